package sqlstore

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store"
)

// RecordAPIKeyUsage adds usage counted by one server to what is stored,
// in one transaction: additions, so servers never overwrite each other's
// counts. Keys deleted meanwhile are skipped.
func (db *DB) RecordAPIKeyUsage(ctx context.Context, usage []account.KeyUsage) error {
	if len(usage) == 0 {
		return nil
	}
	// Rows are locked in one order, by key and day, whichever order the
	// batch came in: two servers flushing the same keys at once then wait
	// for each other instead of deadlocking (PostgreSQL would abort one).
	usage = slices.SortedFunc(slices.Values(usage), func(a, b account.KeyUsage) int {
		return cmp.Or(cmp.Compare(a.KeyID, b.KeyID), a.Day.Compare(b.Day))
	})
	return db.inTx(ctx, "record API key usage", func(t *tx) error {
		for _, u := range usage {
			if err := recordAccepted(t, u); err != nil {
				return err
			}
			var errs int64
			for _, n := range u.Errors {
				errs += n
			}
			day := account.DayStart(u.Day).Unix()
			if _, err := t.exec(`INSERT INTO key_usage_days (api_key_id, day, requests, renders, errors)
				SELECT id, ?, ?, ?, ? FROM api_keys WHERE id = ?
				ON CONFLICT (api_key_id, day) DO UPDATE SET requests = key_usage_days.requests + excluded.requests,
					renders = key_usage_days.renders + excluded.renders, errors = key_usage_days.errors + excluded.errors`,
				day, u.Requests, u.Renders, errs, u.KeyID); err != nil {
				return err
			}
			for _, code := range slices.Sorted(maps.Keys(u.Errors)) {
				n := u.Errors[code]
				if _, err := t.exec(`INSERT INTO key_usage_errors (api_key_id, day, code, count)
					SELECT id, ?, ?, ? FROM api_keys WHERE id = ?
					ON CONFLICT (api_key_id, day, code) DO UPDATE SET count = key_usage_errors.count + excluded.count`,
					day, code, n, u.KeyID); err != nil {
					return err
				}
			}
			if err := recordDayIPs(t, u.KeyID, day, u.IPs); err != nil {
				return err
			}
		}
		return nil
	})
}

// recordAccepted adds a batch's accepted requests to the key: its count,
// first use (the earliest, whichever server flushes first) and last use,
// and the last client, the one of the latest request
// whichever server saw it (the comparison reads the row before the update).
func recordAccepted(t *tx, u account.KeyUsage) error {
	if u.Accepted == 0 {
		return nil
	}
	_, err := t.exec(`UPDATE api_keys
		SET request_count = request_count + ?,
		    first_used_at = CASE WHEN first_used_at IS NULL OR first_used_at > ? THEN ? ELSE first_used_at END,
		    last_ip = CASE WHEN ? >= coalesce(last_used_at, 0) THEN ? ELSE last_ip END,
		    last_user_agent = CASE WHEN ? >= coalesce(last_used_at, 0) THEN ? ELSE last_user_agent END,
		    last_used_at = `+t.db.d.Greatest()+`(coalesce(last_used_at, 0), ?)
		WHERE id = ?`,
		u.Accepted, u.FirstUsed.Unix(), u.FirstUsed.Unix(), u.LastUsed.Unix(), u.LastIP, u.LastUsed.Unix(), u.LastAgent, u.LastUsed.Unix(), u.KeyID)
	return err
}

// recordDayIPs keeps the client addresses of a key's day, up to
// account.MaxDayIPs.
func recordDayIPs(t *tx, keyID, day int64, ips []string) error {
	if len(ips) == 0 {
		return nil
	}
	var have int
	if err := t.row(`SELECT count(*) FROM key_day_ips WHERE api_key_id = ? AND day = ?`, keyID, day).Scan(&have); err != nil {
		return err
	}
	for _, ip := range ips {
		if have >= account.MaxDayIPs {
			return nil
		}
		res, err := t.exec(`INSERT INTO key_day_ips (api_key_id, day, ip) SELECT id, ?, ? FROM api_keys WHERE id = ?
			ON CONFLICT (api_key_id, day, ip) DO NOTHING`, day, ip, keyID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			have++
		}
	}
	return nil
}

// KeyUsageDays is one of the user's keys' usage on each day from `from`
// (UTC) on, oldest first, days without usage left out; another user's key
// has none.
func (db *DB) KeyUsageDays(ctx context.Context, userID, keyID int64, from time.Time) ([]account.KeyDay, error) {
	since := account.DayStart(from).Unix()
	rows, err := db.rows(ctx, `SELECT d.day, d.requests, d.renders, d.credits, d.errors
		FROM key_usage_days d JOIN api_keys k ON k.id = d.api_key_id
		WHERE d.api_key_id = ? AND k.user_id = ? AND d.day >= ? ORDER BY d.day`, keyID, userID, since)
	if err != nil {
		return nil, db.fail("key usage", err)
	}
	var days []account.KeyDay
	index := map[int64]int{}
	for rows.Next() {
		var d account.KeyDay
		var day int64
		if err := rows.Scan(&day, &d.Requests, &d.Renders, &d.Credits, &d.Errors); err != nil {
			rows.Close()
			return nil, db.fail("key usage", err)
		}
		d.Day = time.Unix(day, 0).UTC()
		index[day] = len(days)
		days = append(days, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.fail("key usage", err)
	}
	codes, err := db.rows(ctx, `SELECT e.day, e.code, e.count
		FROM key_usage_errors e JOIN api_keys k ON k.id = e.api_key_id
		WHERE e.api_key_id = ? AND k.user_id = ? AND e.day >= ?`, keyID, userID, since)
	if err != nil {
		return nil, db.fail("key usage", err)
	}
	defer codes.Close()
	for codes.Next() {
		var day, n int64
		var code string
		if err := codes.Scan(&day, &code, &n); err != nil {
			return nil, db.fail("key usage", err)
		}
		if i, ok := index[day]; ok {
			if days[i].ErrorsByCode == nil {
				days[i].ErrorsByCode = map[string]int64{}
			}
			days[i].ErrorsByCode[code] = n
		}
	}
	if err := codes.Err(); err != nil {
		return nil, db.fail("key usage", err)
	}
	return days, nil
}

// KeyIPsPerDay is, for each of the user's keys seen from more than min
// client addresses in one day since `since`, the most it was seen from in
// a day: key health's "many addresses", in one query.
func (db *DB) KeyIPsPerDay(ctx context.Context, userID int64, since time.Time, min int) (map[int64]int, error) {
	rows, err := db.rows(ctx, `SELECT api_key_id, max(n) FROM (
			SELECT i.api_key_id, i.day, count(*) AS n FROM key_day_ips i JOIN api_keys k ON k.id = i.api_key_id
			WHERE k.user_id = ? AND i.day >= ? GROUP BY i.api_key_id, i.day) per_day
		GROUP BY api_key_id HAVING max(n) > ?`, userID, account.DayStart(since).Unix(), min)
	if err != nil {
		return nil, db.fail("key addresses", err)
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, db.fail("key addresses", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("key addresses", err)
	}
	return out, nil
}

// UpdateKeyLifecycles brings forward what time alone changes about keys:
// a key rotated with grace auto retires an hour after its last use once
// its replacement was used (never later than its limit, and never again
// once retired); and a key that passed its expiry or retirement gets its
// key.expired or key.retired entry in its owner's log, once. Every
// instance runs it; it is idempotent.
func (db *DB) UpdateKeyLifecycles(ctx context.Context) (ended int, err error) {
	err = db.inTx(ctx, "update key lifecycles", func(t *tx) error {
		now := t.now.Unix()
		rows, err := t.rows(`SELECT k.id, k.user_id, k.rotated_at, coalesce(k.last_used_at, 0), coalesce(r.first_used_at, 0)
			FROM api_keys k JOIN api_keys r ON r.id = k.replaced_by
			WHERE k.auto_retire AND k.retires_at > ? AND r.first_used_at IS NOT NULL`, now)
		if err != nil {
			return err
		}
		type move struct{ id, user, at int64 }
		var moves []move
		for rows.Next() {
			var id, user, rotated, last, first int64
			if err := rows.Scan(&id, &user, &rotated, &last, &first); err != nil {
				rows.Close()
				return err
			}
			limit := time.Unix(rotated, 0).Add(account.AutoGraceMax)
			moves = append(moves, move{id, user, account.AutoRetirement(limit, unixOr(last), unixOr(first)).Unix()})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, m := range moves {
			// A retirement moves later while the old key is in use, never
			// past the rotation's limit. Only a retirement that moves is
			// written, and announced: caches of the key (on every
			// instance) must not keep the old time.
			res, err := t.exec(`UPDATE api_keys SET retires_at = ? WHERE id = ? AND retires_at > ? AND retires_at <> ?`,
				m.at, m.id, now, m.at)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n > 0 {
				if err := t.notify(store.Change{KeyID: m.id, UserID: m.user}); err != nil {
					return err
				}
			}
		}
		ended, err = logKeyEnds(t, now)
		return err
	})
	return ended, err
}

func unixOr(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// logKeyEnds writes key.expired and key.retired for the keys that passed
// their end since the last time, and notes that they have been written.
func logKeyEnds(t *tx, now int64) (int, error) {
	// Each half is a range of a partial index of the keys not yet logged
	// (an OR of the two would scan every key).
	rows, err := t.rows(`SELECT `+apiKeyColumns+` FROM api_keys WHERE id IN (
		SELECT id FROM api_keys WHERE NOT end_logged AND expires_at <= ?
		UNION ALL SELECT id FROM api_keys WHERE NOT end_logged AND retires_at <= ?)
		ORDER BY id`, now, now)
	if err != nil {
		return 0, err
	}
	keys, err := scanAPIKeys(rows)
	if err != nil {
		return 0, err
	}
	logged := 0
	for _, k := range keys {
		// Claim the end first: another instance's job that read the same
		// key waits for this one and then finds it claimed (PostgreSQL
		// reads the row again for the update), so it is logged once.
		res, err := t.exec(`UPDATE api_keys SET end_logged = ? WHERE id = ? AND NOT end_logged`, true, k.ID)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		if n == 0 {
			continue
		}
		ev, detail := account.EventKeyRetired, "its grace period after the rotation ended"
		if !k.ExpiresAt.IsZero() && (k.RetiresAt.IsZero() || !k.ExpiresAt.After(k.RetiresAt)) {
			ev, detail = account.EventKeyExpired, "it reached the expiration its owner chose"
		}
		if err := t.logAs(account.Actor{Kind: account.ActorSystem}, k.UserID, ev, &k, detail); err != nil {
			return 0, err
		}
		logged++
	}
	return logged, nil
}
