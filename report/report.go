package report

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
)

// ErrInvalid is wrapped by every error that WriteCharging returns for
// input it cannot draw (mismatched lengths, NaN or infinite values).
var ErrInvalid = errors.New("report: invalid input")

// Series is one named line.
type Series struct {
	Name string    // shown in legends and error messages
	Y    []float64 // one value per slot
}

// ConvPoint is one solver iteration.
type ConvPoint struct {
	Iter      int     // iteration number as counted by the solver
	Objective float64 // kW^2
	Change    float64 // max per-slot change of aggregate load, kW
	Violation float64 // worst vmin - V, pu (<=0 means feasible)
}

// Charging is what a coordinated-charging report shows.
//
// Baseline, Aggregate and every series in EVs and Voltages must hold one
// value per entry of SlotLabels. A VMin that is not positive is taken as
// unset and no limit line is drawn. Empty EVs, Voltages or Convergence
// omit the corresponding figure; with no slots at all, every per-slot
// figure is omitted.
type Charging struct {
	Title       string       // e.g. "gridveil: ieee13-paper, seed 1"
	Summary     [][2]string  // key/value rows shown as a table at the top
	SlotLabels  []string     // clock label per slot, e.g. "19:00", "19:15", ...
	Baseline    []float64    // total baseline load per slot, kW
	Aggregate   []float64    // baseline + EV charging per slot, kW (valley filled)
	EVs         []Series     // a selection of EV charging profiles, kW per slot (paper Fig. 4)
	EVTotal     int          // the fleet's size when EVs is a sample of it (the caption says so); 0: EVs is the fleet
	Voltages    []Series     // bus voltage per slot, pu (paper Fig. 6); may be many buses
	VMin        float64      // voltage limit, pu, drawn as a dashed line
	Convergence []ConvPoint  // one point per solver iteration
	Tables      []Table      // extra tables after the summary (e.g. the privacy comparison)
	Band        *Band        // one vehicle's messages against its true profile (paper Fig. 5)
	Lines       []LineFigure // extra line figures (e.g. the market's prices per window)
	Curves      []XYFigure   // extra figures over a numeric x axis (e.g. an order book's depth)
	Notes       []string     // free paragraphs shown at the end
}

// Table is a titled table of text cells.
type Table struct {
	Title   string
	Header  []string
	Rows    [][]string
	Caption string
}

// LineFigure is a titled figure of series over labelled points (clock
// labels such as "19:00" get hourly ticks). Every series has one value per
// label.
type LineFigure struct {
	Title   string
	YLabel  string
	Labels  []string
	Series  []Series
	Caption string
}

// XYFigure is a titled figure of curves over a numeric x axis. With Step,
// each curve is drawn as a staircase that holds Y[i] from X[i] to X[i+1],
// as a supply or demand curve is.
type XYFigure struct {
	Title   string
	XLabel  string
	YLabel  string
	Curves  []XYSeries
	Step    bool
	Caption string
}

// XYSeries is one named curve; X and Y have equal lengths.
type XYSeries struct {
	Name string
	X, Y []float64
}

// Band is what one vehicle sent against what it hides: its true schedule
// and the m obfuscated values per slot it sent in one iteration (paper
// Fig. 5). Truth and every message row hold one value per slot.
type Band struct {
	Name      string
	Iteration int
	Truth     []float64
	Messages  [][]float64
}

// WriteCharging writes the report as one self-contained HTML page.
//
// It validates c first and returns an error wrapping ErrInvalid, naming
// the offending series, if any length or value is unusable. Nothing is
// written to w unless the whole page was rendered.
func WriteCharging(w io.Writer, c *Charging) error {
	if err := validate(c); err != nil {
		return err
	}
	figs, err := chargingFigures(c)
	if err != nil {
		return fmt.Errorf("report: drawing figures: %w", err)
	}
	title := c.Title
	if title == "" {
		title = "gridveil report"
	}
	return WritePage(w, &Page{Title: title, Summary: c.Summary, Tables: c.Tables, Figures: figs, Notes: c.Notes})
}

// validate checks that every per-slot series has one finite value per
// slot and that the convergence history is finite.
func validate(c *Charging) error {
	if c == nil {
		return fmt.Errorf("%w: nil *Charging", ErrInvalid)
	}
	n := len(c.SlotLabels)
	if err := checkSeries("baseline", c.Baseline, n); err != nil {
		return err
	}
	if err := checkSeries("aggregate", c.Aggregate, n); err != nil {
		return err
	}
	for i, s := range c.EVs {
		if err := checkSeries("EV series "+seriesRef(s.Name, i), s.Y, n); err != nil {
			return err
		}
	}
	for i, s := range c.Voltages {
		if err := checkSeries("voltage series "+seriesRef(s.Name, i), s.Y, n); err != nil {
			return err
		}
	}
	if !finite(c.VMin) {
		return fmt.Errorf("%w: VMin is %v", ErrInvalid, c.VMin)
	}
	for i, p := range c.Convergence {
		for _, f := range []struct {
			name string
			v    float64
		}{{"objective", p.Objective}, {"change", p.Change}, {"violation", p.Violation}} {
			if !finite(f.v) {
				return fmt.Errorf("%w: convergence point %d (iteration %d): %s is %v",
					ErrInvalid, i, p.Iter, f.name, f.v)
			}
		}
	}
	for _, l := range c.Lines {
		for _, sr := range l.Series {
			if err := checkSeries(l.Title+": "+sr.Name, sr.Y, len(l.Labels)); err != nil {
				return err
			}
		}
	}
	for _, f := range c.Curves {
		for _, sr := range f.Curves {
			if len(sr.X) != len(sr.Y) {
				return fmt.Errorf("%w: %s: %s has %d x and %d y values", ErrInvalid, f.Title, sr.Name, len(sr.X), len(sr.Y))
			}
			for i := range sr.X {
				if !finite(sr.X[i]) || !finite(sr.Y[i]) {
					return fmt.Errorf("%w: %s: %s point %d is (%v, %v)", ErrInvalid, f.Title, sr.Name, i, sr.X[i], sr.Y[i])
				}
			}
		}
	}
	if b := c.Band; b != nil {
		if err := checkSeries("band truth", b.Truth, len(c.SlotLabels)); err != nil {
			return err
		}
		for i, m := range b.Messages {
			if err := checkSeries(fmt.Sprintf("band message %d", i), m, len(c.SlotLabels)); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSeries reports a series whose length differs from n or which
// holds a NaN or infinite value.
func checkSeries(what string, y []float64, n int) error {
	if len(y) != n {
		return fmt.Errorf("%w: %s has %d values, want %d (one per slot label)",
			ErrInvalid, what, len(y), n)
	}
	for t, v := range y {
		if !finite(v) {
			return fmt.Errorf("%w: %s: value at slot %d is %v", ErrInvalid, what, t, v)
		}
	}
	return nil
}

// seriesRef names series i for error messages.
func seriesRef(name string, i int) string {
	if name == "" {
		return fmt.Sprintf("#%d (unnamed)", i)
	}
	return fmt.Sprintf("%q (#%d)", name, i)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"numeric": numeric}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{margin:0;background:#fff;color:#1a1a1a;font:15px/1.5 "Liberation Sans",Arial,Helvetica,sans-serif}
main{max-width:760px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:1.45em;margin:.4em 0 .6em}
h2{font-size:1.1em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:1px solid #ddd}
table.summary{border-collapse:collapse;font-size:.93em}
table.summary th,table.summary td{padding:3px 14px 3px 0;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
table.summary th{font-weight:600;color:#444;white-space:nowrap}
table.summary td{font-variant-numeric:tabular-nums}
table.summary td.n{text-align:right}
figure{margin:1.2em 0 1.8em}
figure svg{display:block;max-width:100%;height:auto}
div.wide{overflow-x:auto;width:max-content;min-width:100%;max-width:96vw;position:relative;left:50%;transform:translateX(-50%)}
table.data{font-size:.8em}
table.data td,table.data th{padding-right:10px}
table.data th{white-space:normal;min-width:4em}
table.data td.n{white-space:nowrap}
figcaption,p.caption{font-size:.9em;color:#444;margin-top:.3em}
footer{margin-top:2.5em;font-size:.8em;color:#777}
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
{{- if .Summary}}
<h2>{{.SummaryTitle}}</h2>
<table class="summary">
<tbody>
{{- range .Summary}}
<tr><th scope="row">{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{- end}}
</tbody>
</table>
{{- end}}
{{- range .Tables}}
<h2>{{.Title}}</h2>
<div class="wide"><table class="summary data">
<thead><tr>{{range .Header}}<th scope="col">{{.}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Rows}}
<tr>{{range .}}<td{{if numeric .}} class="n"{{end}}>{{.}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table></div>
{{- if .Caption}}<p class="caption">{{.Caption}}</p>{{end}}
{{- end}}
{{- if .Figures}}
<h2>Figures</h2>
{{- range .Figures}}
<figure>
{{.SVG}}
<figcaption>{{.Caption}}</figcaption>
</figure>
{{- end}}
{{- end}}
{{- if .Notes}}
<h2>Notes</h2>
{{- range .Notes}}
<p>{{.}}</p>
{{- end}}
{{- end}}
<footer>{{.Footer}}</footer>
</main>
</body>
</html>
`))
