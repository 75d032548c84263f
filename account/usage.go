package account

import "time"

// MaxDayIPs is how many distinct client addresses a key's day keeps: more
// than enough to tell a key used from too many.
const MaxDayIPs = 20

// KeyUsage is usage of one key on one day (UTC) counted in a server's
// memory since its last flush. Flushes add to what is stored, so any
// number of servers may each flush their own.
type KeyUsage struct {
	KeyID int64
	Day   time.Time // the day's start, UTC
	// Requests counts every request made with the key; Accepted those its
	// state and policy let through to an endpoint, which are the key's
	// request count and last use.
	Requests int64
	Accepted int64
	Renders  int64            // successful renders
	Errors   map[string]int64 // refused requests by error code
	IPs      []string         // distinct client addresses, at most MaxDayIPs
	// The first and the last accepted request, and who made the last.
	FirstUsed, LastUsed time.Time
	LastIP, LastAgent   string
}

// KeyDay is a key's usage on one day, as stored.
type KeyDay struct {
	Day      time.Time
	Requests int64
	Renders  int64
	Credits  int64
	Errors   int64
	// ErrorsByCode counts the refused requests by code.
	ErrorsByCode map[string]int64
}
