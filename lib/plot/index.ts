export {
  PLOTLY_FILE,
  displayHtml,
  figureDir,
  figureHtml,
  inNotebook,
  lastSavedFigure,
  plotlyBundleScript,
  plotlyVersion,
  setupNotebook,
  showHtml,
  showPlot,
  standaloneHtml,
  writeFigureHtml,
  writePlotlyFile,
} from './display';
export type { PlotlyFigure, ShowPlotOptions } from './display';
export { METHOD_COLORS, METHOD_LABELS, finalKnn, readRunLog, trainingCurvesFigure } from './runs';
export type { CurveOptions, CurveRun, EpochRecord, RunLog, StepRecord } from './runs';
export { barFigure, escapeHtml, htmlTable, pixelsDataUri, sampleGridFigure, sideBySideTables } from './tables';
export type { BarSeries, HtmlTable, RawImages } from './tables';
export { CHROMIUM_FLAGS, checkPage, findChromium, mapLimit, pageSize, screenshot } from './browser';
export type { PageCheck, ScreenshotOptions } from './browser';
