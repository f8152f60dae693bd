// Package report renders human-readable reports of gridveil simulations.
//
// WriteCharging turns the outcome of a coordinated-charging (valley
// filling) run into one self-contained HTML page: a summary table, the
// aggregate load against the baseline (paper Fig. 3), a selection of EV
// charging profiles (Fig. 4), the bus voltages against the lower limit
// vmin (Fig. 6), the solver's convergence, and free-text notes. Figures
// are drawn with gonum.org/v1/plot and embedded as inline SVG, so the
// page needs no network access, no external files and no JavaScript.
//
// WritePage, RenderSVG, PlotSVG and NewPlot are the house style that the
// other reports (gridveil home, gridveil ldp) share: one page layout, one
// way to inline a figure, one plot style.
//
// The package is a thin shell: it only draws numbers that its caller
// has already computed. It performs no simulation, changes no input, and
// has no effect on results. Its output depends only on its input, so the
// same input always yields the same bytes.
package report
