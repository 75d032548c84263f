package templates

import (
	"slices"
	"strconv"
	"time"

	"github.com/peekshot/peekshot/account"
)

// The usage chart's drawing area, in SVG units; the SVG scales to its
// container, so these only set its proportions.
const (
	chartW, chartH = 720.0, 200.0
	chartLeft      = 40.0 // room for the y-axis labels
	chartBottom    = 24.0 // room for the x-axis labels
	chartTop       = 8.0
	chartDays      = 30
)

// UsageChart is a key's last 30 days (UTC), each day's numbers and where
// the chart draws them: a bar of the day's requests split into renders,
// refused requests and the rest, and the credits spent as a line.
type UsageChart struct {
	Days   []ChartDay
	Max    int64 // the y axis' top
	Ticks  []ChartTick
	Totals account.KeyDay
	// CreditsPath is the credits line, an SVG path.
	CreditsPath string
}

// ChartDay is one day of the chart.
type ChartDay struct {
	account.KeyDay
	X, W               float64 // the bar's left and width
	RendersY, RendersH float64
	ErrorsY, ErrorsH   float64
	OthersY, OthersH   float64
	CreditsX, CreditsY float64
	Label              string // the x-axis label: today and every 7 days before
	Title              string // what hovering the day says
	Date               string // the day, for the table
	ErrorCodes         string // the errors by code, for the table
	HasUsage           bool
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
		c.Days = append(c.Days, ChartDay{KeyDay: d})
		c.Totals.Requests += d.Requests
		c.Totals.Renders += d.Renders
		c.Totals.Credits += d.Credits
		c.Totals.Errors += d.Errors
		c.Max = max(c.Max, d.Requests, d.Credits, d.Renders+d.Errors)
	}
	c.Max = niceCeil(c.Max)
	plotH := chartH - chartTop - chartBottom
	slot := (chartW - chartLeft) / chartDays
	y := func(v int64) float64 { return chartTop + plotH - float64(v)/float64(c.Max)*plotH }
	for _, frac := range []int64{0, 1, 2} {
		v := c.Max * frac / 2
		c.Ticks = append(c.Ticks, ChartTick{Y: y(v), Label: FormatInt(v)})
	}
	path := ""
	for i := range c.Days {
		d := &c.Days[i]
		d.X, d.W = chartLeft+float64(i)*slot+slot*0.15, slot*0.7
		others := max(d.Requests-d.Renders-d.Errors, 0)
		// Stacked from the axis up: renders, refused, the rest.
		d.RendersY, d.RendersH = y(d.Renders), float64(d.Renders)/float64(c.Max)*plotH
		d.ErrorsH = float64(d.Errors) / float64(c.Max) * plotH
		d.ErrorsY = d.RendersY - d.ErrorsH
		d.OthersH = float64(others) / float64(c.Max) * plotH
		d.OthersY = d.ErrorsY - d.OthersH
		d.CreditsX, d.CreditsY = d.X+d.W/2, y(d.Credits)
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		path += cmd + fmtF(d.CreditsX) + " " + fmtF(d.CreditsY) + " "
		d.Date = d.Day.Format("Mon 2 Jan")
		if (chartDays-1-i)%7 == 0 { // today, and every week before it
			d.Label = d.Day.Format("2 Jan")
		}
		d.Title = d.Date + ": " + plural(d.Requests, "request") + ", " + plural(d.Renders, "render") + ", " +
			CreditsText(d.Credits) + ", " + plural(d.Errors, "refused request")
		d.ErrorCodes = errorCodesText(d.ErrorsByCode)
		d.HasUsage = d.Requests > 0 || d.Credits > 0
	}
	c.CreditsPath = path
	return c
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

// viewBox is the chart's SVG viewBox.
func viewBox() string { return "0 0 " + fmtF(chartW) + " " + fmtF(chartH) }

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// chartSummary says in a sentence what the chart shows.
func chartSummary(c UsageChart) string {
	busiest := c.Days[0]
	for _, d := range c.Days {
		if d.Requests > busiest.Requests {
			busiest = d
		}
	}
	s := "In the last 30 days: " + plural(c.Totals.Requests, "request") + ", " + plural(c.Totals.Renders, "successful render") +
		", " + CreditsText(c.Totals.Credits) + " spent, " + plural(c.Totals.Errors, "refused request") + "."
	if busiest.Requests > 0 {
		s += " The busiest day was " + busiest.Date + " with " + plural(busiest.Requests, "request") + "."
	}
	return s
}
