package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
)

// ReportLeakedKey turns off the key a secret scanner found, in the
// statement that says whether it was on, keeps the report (the latest one,
// which comes back even if an earlier one was dismissed), and logs it.
// The key's change is announced, so every instance refuses it at once.
func (db *DB) ReportLeakedKey(ctx context.Context, hash apikey.Hash, leak account.Leak) (account.LeakReport, error) {
	var r account.LeakReport
	err := db.inTx(ctx, "report leaked key", func(t *tx) error {
		k, err := scanAPIKey(t.row(`SELECT `+apiKeyColumns+` FROM api_keys WHERE key_hash = ?`, hash[:]))
		if err != nil {
			return err
		}
		// An expired key is refused for good already: it is not turned
		// off, only reported.
		var turnedOff int64
		if k.Status(t.now) != account.KeyExpired {
			res, err := t.exec(`UPDATE api_keys SET active = ? WHERE id = ? AND active`, false, k.ID)
			if err != nil {
				return err
			}
			if turnedOff, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		now := t.now.Unix()
		deactivated := nullUnix(time.Time{})
		if turnedOff > 0 {
			deactivated = nullUnix(time.Unix(now, 0))
		}
		// The report keeps when a report first turned the key off.
		if err := t.row(`INSERT INTO key_leak_reports (api_key_id, reported_at, url, source, deactivated_at, dismissed_at)
			VALUES (?, ?, ?, ?, ?, NULL)
			ON CONFLICT (api_key_id) DO UPDATE SET reported_at = excluded.reported_at, url = excluded.url, source = excluded.source,
				deactivated_at = coalesce(excluded.deactivated_at, key_leak_reports.deactivated_at), dismissed_at = NULL
			RETURNING deactivated_at`,
			k.ID, now, leak.URL, leak.Source, deactivated).Scan(&deactivated); err != nil {
			return err
		}
		detail := "found at " + leak.URL
		if leak.Source != "" {
			detail += " (" + leak.Source + ")"
		}
		switch {
		case turnedOff > 0:
			detail += "; deactivated at once"
		case k.Status(t.now) == account.KeyExpired:
			detail += "; it had already stopped working"
		default:
			detail += "; it was already deactivated"
		}
		k.Active = false
		if err := t.log(k.UserID, account.EventKeyLeakReported, &k, detail); err != nil {
			return err
		}
		r = account.LeakReport{Key: k, ReportedAt: time.Unix(now, 0), URL: leak.URL, Source: leak.Source, DeactivatedAt: unix(deactivated)}
		return t.notify(changeOfKey(k))
	})
	return r, err
}

const leakColumns = `r.reported_at, r.url, r.source, r.deactivated_at`

func scanLeakReport(row interface{ Scan(...any) error }) (account.LeakReport, error) {
	var r account.LeakReport
	var reported int64
	var deactivated sql.NullInt64
	k, err := scanAPIKey(scanWith(row, &reported, &r.URL, &r.Source, &deactivated))
	if err != nil {
		return account.LeakReport{}, err
	}
	r.Key, r.ReportedAt, r.DeactivatedAt = k, time.Unix(reported, 0), unix(deactivated)
	return r, nil
}

// LeakReports lists the user's keys reported leaked that still need their
// owner: not dismissed, not rotated since the report, and able to work
// again (an expired key can't, whatever leaked).
func (db *DB) LeakReports(ctx context.Context, userID int64) ([]account.LeakReport, error) {
	rows, err := db.rows(ctx, `SELECT `+prefixed("k", apiKeyColumns)+`, `+leakColumns+`
		FROM key_leak_reports r JOIN api_keys k ON k.id = r.api_key_id
		WHERE k.user_id = ? AND r.dismissed_at IS NULL AND (k.rotated_at IS NULL OR k.rotated_at < r.reported_at)
		ORDER BY r.reported_at DESC, k.id DESC`, userID)
	if err != nil {
		return nil, db.fail("leak reports", err)
	}
	defer rows.Close()
	now := db.now()
	var out []account.LeakReport
	for rows.Next() {
		r, err := scanLeakReport(rows)
		if err != nil {
			return nil, db.fail("leak reports", err)
		}
		if r.Key.Status(now) != account.KeyExpired {
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("leak reports", err)
	}
	return out, nil
}

// DismissLeakReport marks one of the user's keys' report dealt with.
func (db *DB) DismissLeakReport(ctx context.Context, userID, keyID int64) error {
	return db.inTx(ctx, "dismiss leak report", func(t *tx) error {
		return expectOne(t.exec(`UPDATE key_leak_reports SET dismissed_at = ?
			WHERE api_key_id = (SELECT id FROM api_keys WHERE id = ? AND user_id = ?) AND dismissed_at IS NULL`,
			t.now.Unix(), keyID, userID))
	})
}
