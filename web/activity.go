package web

import (
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

// activityPage is how many entries a page of the log shows.
const activityPage = 50

// activityFilter reads the log's filters from the query: ?key=ID,
// ?event=NAME and ?before=ID (entries older than that one). A filter that
// can't be understood is refused with what is wrong, never ignored.
func activityFilter(c echo.Context) (account.ActivityFilter, error) {
	var f account.ActivityFilter
	q := c.QueryParams()
	if v := strings.TrimSpace(q.Get("key")); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return f, badFilter("Choose a key from the list: “" + displayable(v) + "” is not one.")
		}
		f.KeyID = id
	}
	if v := strings.TrimSpace(q.Get("event")); v != "" {
		if !slices.Contains(account.Events, account.Event(v)) {
			return f, badFilter("Choose an event from the list: “" + displayable(v) + "” is not one.")
		}
		f.Event = account.Event(v)
	}
	if v := strings.TrimSpace(q.Get("before")); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return f, badFilter("That page of the activity log doesn't exist. Start again from the newest entries.")
		}
		f.Before = id
	}
	return f, nil
}

func badFilter(msg string) error {
	return &httpError{Status: http.StatusBadRequest, Code: "invalid_request", Title: "Filter not understood", Message: msg}
}

// handleActivity answers GET /account/activity: the account's log,
// newest first, a page at a time.
func (s *Server) handleActivity(c echo.Context) error {
	f, err := activityFilter(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	u := currentUser(c)
	keys, err := s.store.APIKeys(ctx, u.ID)
	if err != nil {
		return err
	}
	f.Limit = activityPage + 1
	entries, err := s.store.Activity(ctx, u.ID, f)
	if err != nil {
		return err
	}
	p := templates.ActivityProps{Keys: keys, Filter: f}
	if len(entries) > activityPage {
		entries = entries[:activityPage]
		p.Older = "/account/activity" + p.Query(entries[len(entries)-1].ID)
	}
	if f.Before != 0 {
		p.Newest = "/account/activity" + p.Query(0)
	}
	p.Entries = entries
	if f.KeyID != 0 && !slices.ContainsFunc(keys, func(k account.APIKey) bool { return k.ID == f.KeyID }) {
		// A deleted key's entries stay in the log: name it as they do.
		p.GoneKey = "Deleted key"
		if len(entries) > 0 {
			p.GoneKey = templates.ActivityKeyLabel(entries[0]) + " (deleted)"
		}
	}
	return s.renderTab(c, http.StatusOK, templates.TabActivity, templates.ActivityPanel(p))
}

// activityCSVHeader names the CSV's columns.
var activityCSVHeader = []string{"time", "event", "key_id", "key_label", "key_masked", "actor", "actor_key", "ip", "user_agent", "detail"}

// handleActivityCSV answers GET /account/activity.csv: every entry the
// page would show under the same filters, on all its pages, newest first.
func (s *Server) handleActivityCSV(c echo.Context) error {
	f, err := activityFilter(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	u := currentUser(c)
	// Read it all before answering, so a failure is an error page and not
	// a file cut short.
	var all []account.Activity
	f.Limit = 1000
	for {
		page, err := s.store.Activity(ctx, u.ID, f)
		if err != nil {
			return err
		}
		all = append(all, page...)
		if len(page) < f.Limit {
			break
		}
		f.Before = page[len(page)-1].ID
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="peekshot-activity-`+s.cfg.Now().UTC().Format("2006-01-02")+`.csv"`)
	noStore(c)
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write(activityCSVHeader)
	for _, a := range all {
		keyID := ""
		if a.KeyID != 0 {
			keyID = strconv.FormatInt(a.KeyID, 10)
		}
		_ = w.Write([]string{
			a.At.UTC().Format(time.RFC3339), string(a.Event), keyID,
			cell(a.KeyLabel), a.KeyMasked, string(a.Actor.Kind), a.Actor.KeyMasked,
			a.Actor.IP, cell(a.Actor.UserAgent), cell(a.Detail),
		})
	}
	w.Flush()
	return w.Error()
}

// cell is text a user or a client chose, made safe for a spreadsheet: a
// leading =, +, - or @ would make it a formula, so it gets a quote mark.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
