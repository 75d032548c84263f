package templates

import (
	"slices"
	"strconv"
	"time"

	"github.com/peekshot/peekshot/account"
)

// chartDays is how many days the usage chart shows.
const chartDays = 30

// chartLayout is a drawing area of the usage chart, in SVG units. The SVG
// scales to its container, so these set its proportions: a wide one for
// screens, a taller one for phones (where the wide one would be a strip).
type chartLayout struct {
	name                  string
	w, h                  float64
	left, bottom, top     float64 // room for the axes' labels
	tickLabelX, dayLabelY float64
}

var (
	wideChart   = chartLayout{name: "wide", w: 720, h: 200, left: 40, bottom: 24, top: 8, tickLabelX: 34, dayLabelY: 194}
	narrowChart = chartLayout{name: "narrow", w: 360, h: 240, left: 36, bottom: 26, top: 8, tickLabelX: 31, dayLabelY: 234}
)

// UsageChart is a key's last 30 days (UTC): each day's numbers, and the
// chart drawn in each layout.
type UsageChart struct {
	Days   []ChartDay
	Max    int64 // the y axis' top
	Totals account.KeyDay
	// TotalsText says the totals ("3 requests, …"), for the caption;
	// Summary says them and the busiest day, for the drawing's description.
	TotalsText, Summary string
	Wide, Narrow        ChartPlot
}

// ChartDay is one day's numbers, and how the chart and its table say them.
type ChartDay struct {
	account.KeyDay
	Label      string // the x-axis label: today and every 7 days before
	Title      string // what hovering the day says
	Date       string // the day, for the table
	ErrorCodes string // the errors by code, for the table
}

// ChartPlot is the chart drawn in one layout: a bar a day of its requests
// split into renders, refused requests and the rest, and the credits spent
// as a line.
type ChartPlot struct {
	Layout      string // "wide" or "narrow"
	ViewBox     string
	GridX1      string
	GridX2      string
	TickLabelX  string
	DayLabelY   string
	Ticks       []ChartTick
	Bars        []ChartBar
	CreditsPath string // an SVG path
}

// ChartBar is where one day is drawn: its segments stacked from the axis
// up (successful renders, refused requests, the rest), the empty left out.
type ChartBar struct {
	Day      ChartDay
	X, W     float64 // the bar's left and width
	Segments []BarSegment
}

// BarSegment is one part of a day's bar: its class, top and height.
type BarSegment struct {
	Class string
	Y, H  float64
}

// ChartTick is a line and label of the y axis.
type ChartTick struct {
	Y     float64
	Label string
}

// NewUsageChart lays out the 30 days up to today (UTC) from days (any
// order; days without usage may be missing).
func NewUsageChart(days []account.KeyDay, today time.Time) UsageChart {
	byDay := map[int64]account.KeyDay{}
	for _, d := range days {
		byDay[account.DayStart(d.Day).Unix()] = d
	}
	first := account.DayStart(today).AddDate(0, 0, -(chartDays - 1))
	c := UsageChart{}
	for i := range chartDays {
		day := first.AddDate(0, 0, i)
		d := byDay[day.Unix()]
		d.Day = day
		cd := ChartDay{KeyDay: d, Date: day.Format("Mon 2 Jan"), ErrorCodes: errorCodesText(d.ErrorsByCode)}
		if (chartDays-1-i)%7 == 0 { // today, and every week before it
			cd.Label = day.Format("2 Jan")
		}
		cd.Title = cd.Date + ": " + plural(d.Requests, "request") + ", " + plural(d.Renders, "render") + ", " +
			CreditsText(d.Credits) + ", " + plural(d.Errors, "refused request")
		c.Days = append(c.Days, cd)
		c.Totals.Requests += d.Requests
		c.Totals.Renders += d.Renders
		c.Totals.Credits += d.Credits
		c.Totals.Errors += d.Errors
		c.Max = max(c.Max, d.Requests, d.Credits, d.Renders+d.Errors)
	}
	c.Max = niceCeil(c.Max)
	c.TotalsText = plural(c.Totals.Requests, "request") + ", " + plural(c.Totals.Renders, "successful render") +
		", " + CreditsText(c.Totals.Credits) + " spent, " + plural(c.Totals.Errors, "refused request")
	c.Summary = chartSummary(c)
	c.Wide, c.Narrow = c.plot(wideChart), c.plot(narrowChart)
	return c
}

// plot draws the chart's days in a layout.
func (c UsageChart) plot(l chartLayout) ChartPlot {
	plotH := l.h - l.top - l.bottom
	slot := (l.w - l.left) / chartDays
	height := func(v int64) float64 { return float64(v) / float64(c.Max) * plotH }
	y := func(v int64) float64 { return l.top + plotH - height(v) }
	p := ChartPlot{Layout: l.name, ViewBox: "0 0 " + fmtF(l.w) + " " + fmtF(l.h),
		GridX1: fmtF(l.left), GridX2: fmtF(l.w), TickLabelX: fmtF(l.tickLabelX), DayLabelY: fmtF(l.dayLabelY)}
	for _, frac := range []int64{0, 1, 2} {
		v := c.Max * frac / 2
		p.Ticks = append(p.Ticks, ChartTick{Y: y(v), Label: FormatInt(v)})
	}
	path := ""
	for i, d := range c.Days {
		b := ChartBar{Day: d, X: l.left + float64(i)*slot + slot*0.15, W: slot * 0.7}
		others := max(d.Requests-d.Renders-d.Errors, 0)
		top := y(0)
		for _, seg := range []struct {
			class string
			n     int64
		}{{"bar-renders", d.Renders}, {"bar-errors", d.Errors}, {"bar-others", others}} {
			h := height(seg.n)
			top -= h
			if h > 0 {
				b.Segments = append(b.Segments, BarSegment{Class: seg.class, Y: top, H: h})
			}
		}
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		path += cmd + fmtF(b.X+b.W/2) + " " + fmtF(y(d.Credits)) + " "
		p.Bars = append(p.Bars, b)
	}
	p.CreditsPath = path
	return p
}

// niceCeil rounds a chart's top up to 1, 2 or 5 times a power of ten (at
// least 4, so a quiet key's chart still has an axis).
func niceCeil(v int64) int64 {
	if v < 4 {
		return 4
	}
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
	}
}

func errorCodesText(codes map[string]int64) string {
	if len(codes) == 0 {
		return ""
	}
	out := ""
	for _, code := range sortedKeys(codes) {
		if out != "" {
			out += ", "
		}
		out += code + " " + FormatInt(codes[code])
	}
	return out
}

func fmtF(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// chartTestID names the wide chart for tests as it always was.
func chartTestID(p ChartPlot) string {
	if p.Layout == wideChart.name {
		return "usage-chart-svg"
	}
	return "usage-chart-svg-" + p.Layout
}

// dayLabel is where a day's label is written under its bar, and how it
// is anchored there: centred, but the last one ends at its bar's right
// edge, inside the chart.
func dayLabel(b ChartBar, p ChartPlot) (x, anchor string) {
	if b.Day.Day.Equal(p.Bars[len(p.Bars)-1].Day.Day) {
		return fmtF(b.X + b.W), "end"
	}
	return fmtF(b.X + b.W/2), "middle"
}

// chartSummary says in a sentence what the chart shows.
func chartSummary(c UsageChart) string {
	busiest := c.Days[0]
	for _, d := range c.Days {
		if d.Requests > busiest.Requests {
			busiest = d
		}
	}
	s := "In the last 30 days: " + c.TotalsText + "."
	if busiest.Requests > 0 {
		s += " The busiest day was " + busiest.Date + " with " + plural(busiest.Requests, "request") + "."
	}
	return s
}
