export {
  NOTEBOOK_STATIC_DIR,
  PLOTLY_FILE,
  displayHtml,
  figureDir,
  figureHtml,
  inlinePlotlyBundle,
  lastSavedFigure,
  notebookPlotlyFile,
  plotlyBundleScript,
  plotlyLoaderScript,
  plotlyVersion,
  setupNotebook,
  showHtml,
  showPlot,
  standaloneHtml,
  writeFigureHtml,
  writeNotebookPlotlyFile,
  writePlotlyFile,
} from './display';
export type { PlotlyFigure, ShowPlotOptions } from './display';
export { METHOD_COLORS, METHOD_LABELS, embeddingStdFigure, finalKnn, readRunLog, runSummary, seedBand, trainingCurvesFigure } from './runs';
export type { CurveOptions, CurveRun, RunLog, RunSummary, SeedBand } from './runs';
export { ABLATION_COLORS, ablationBarsFigure } from './ablations';
export type { AblationBar } from './ablations';
export { MASK_TYPE_COLORS, drawStatsHistogram, drawStatsSummary, imageDataUris, maskPatternsFigure, maskSliderFigure, mixedImages, photoDataUri } from './mask-panels';
export type { DrawStatsSummary, MaskSetting, MixedImages } from './mask-panels';
export { barFigure, escapeHtml, htmlTable, pixelsDataUri, sampleGridFigure, sideBySideTables } from './tables';
export type { BarSeries, HtmlTable, RawImages } from './tables';
export { CHROMIUM_FLAGS, checkPage, findChromium, pageSize, screenshot } from './browser';
export type { PageCheck, ScreenshotOptions } from './browser';
