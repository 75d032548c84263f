package account

import "time"

// KeyUsage is usage of one key counted in a server's memory since its last
// flush. Flushes add to what is stored, so any number of servers may each
// flush their own.
type KeyUsage struct {
	KeyID    int64
	Requests int64
	LastUsed time.Time
}
