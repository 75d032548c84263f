package browsertest

import (
	"context"
	_ "embed"
	"fmt"
	"strings"

	"github.com/chromedp/chromedp"
)

// axeSource is axe-core, vendored (axe/README.md): tests never load it
// from the network.
//
//go:embed axe/axe.min.js
var axeSource string

// AxeViolation is one rule axe-core finds broken, with where.
type AxeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

func (v AxeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %v: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", " "))
	}
	return b.String()
}

// axeTags are the rules PeekShot holds itself to: WCAG 2.2 A and AA, and
// axe's best practices.
const axeTags = `["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]`

// Axe runs axe-core on the page as it is and returns what it finds. The
// script goes in through the protocol, not a <script> tag, so the page's
// Content-Security-Policy stays as it is.
func Axe() chromedp.Action[[]AxeViolation] {
	return func(ctx context.Context, t *chromedp.Target) ([]AxeViolation, error) {
		loaded, err := chromedp.Evaluate[bool](`typeof window.axe === "object"`)(ctx, t)
		if err != nil {
			return nil, err
		}
		if !loaded {
			if _, err := chromedp.Evaluate[any](axeSource+";true")(ctx, t); err != nil {
				return nil, fmt.Errorf("load axe-core: %w", err)
			}
		}
		return chromedp.Evaluate[[]AxeViolation](
			`axe.run(document, {runOnly: {type: "tag", values: `+axeTags+`}, resultTypes: ["violations"]}).then(r => r.violations)`,
			chromedp.EvalAwaitPromise)(ctx, t)
	}
}
