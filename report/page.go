package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Page is one self-contained HTML page in the house style that every
// gridveil report shares (sim, home, ldp): a title, a key/value summary,
// tables, numbered figures and notes.
type Page struct {
	Title        string
	SummaryTitle string      // heading of the summary table; "Summary" if empty
	Summary      [][2]string // key/value rows
	Tables       []Table
	Figures      []Figure // captions are numbered in order: "Figure 1. ..."
	Notes        []string
	Footer       string // "" for the default line
}

// Figure is one rendered figure: an inline <svg> element from RenderSVG or
// PlotSVG, and its caption.
type Figure struct {
	SVG     template.HTML
	Caption string
}

// WritePage renders p to w. Nothing is written unless the whole page was
// rendered.
func WritePage(w io.Writer, p *Page) error {
	if p == nil {
		return fmt.Errorf("%w: nil page", ErrInvalid)
	}
	data := *p
	if data.Title == "" {
		data.Title = "gridveil report"
	}
	if data.SummaryTitle == "" {
		data.SummaryTitle = "Summary"
	}
	if data.Footer == "" {
		data.Footer = "Rendered by gridveil/report from the simulation's outputs; the figures are inline SVG."
	}
	data.Figures = make([]Figure, len(p.Figures))
	for i, f := range p.Figures {
		data.Figures[i] = Figure{SVG: f.SVG, Caption: fmt.Sprintf("Figure %d. %s", i+1, f.Caption)}
	}
	for _, t := range data.Tables {
		for i, r := range t.Rows {
			if len(r) != len(t.Header) {
				return fmt.Errorf("%w: table %q: row %d has %d cells for %d columns", ErrInvalid, t.Title, i, len(r), len(t.Header))
			}
		}
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		return fmt.Errorf("report: executing template: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("report: writing page: %w", err)
	}
	return nil
}

// RenderSVG draws one figure of size w x h with drawFn and returns it as
// an inline <svg> element labelled for screen readers. gonum/plot panics
// on some degenerate input; that becomes an error.
func RenderSVG(w, h vg.Length, label string, drawFn func(dc draw.Canvas)) (template.HTML, error) {
	svg, err := renderSVG(w, h, label, drawFn)
	// renderSVG builds the element from gonum's escaped output and an
	// escaped label, so it is safe HTML.
	return template.HTML(svg), err
}

// PlotSVG draws plot p alone as an inline <svg> element.
func PlotSVG(p *plot.Plot, w, h vg.Length, label string) (template.HTML, error) {
	return RenderSVG(w, h, label, func(dc draw.Canvas) { p.Draw(dc) })
}

// NewPlot returns a plot in the house style: title, axis labels and a
// light grid.
func NewPlot(title, xlabel, ylabel string) *plot.Plot { return newPlot(title, xlabel, ylabel) }

// numeric tells whether a table cell reads as a number (possibly signed,
// with a unit-free suffix such as "%" or "x"), so that it is right-aligned.
func numeric(s string) bool {
	s = strings.TrimSpace(s)
	s = strings.TrimRight(s, "%x")
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return false
	}
	_, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	return err == nil
}
