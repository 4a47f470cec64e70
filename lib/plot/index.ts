export {
  displayHtml,
  figureHtml,
  inNotebook,
  plotlyBundleScript,
  plotlyVersion,
  setupNotebook,
  showPlot,
  standaloneHtml,
  writeFigureHtml,
} from './display';
export type { PlotlyFigure } from './display';
