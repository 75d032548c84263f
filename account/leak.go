package account

import "time"

// LeakReport is a secret scanner's report that one of a user's keys was
// found in public (SPEC §8): when, where, and what it did to the key. It
// stays until the owner deals with it: the key is rotated or deleted, or
// the owner dismisses the report.
type LeakReport struct {
	Key        APIKey // ID, UserID, Label, Prefix, Last4, Active
	ReportedAt time.Time
	URL        string // where the scanner found it
	Source     string // what the scanner said it was (a commit, an issue, …)
	// DeactivatedAt is when a report turned the key off; zero when it was
	// off already.
	DeactivatedAt time.Time
}

// Leak is what a scanner says it found, as reported to the store.
type Leak struct {
	URL    string
	Source string
}

// Bounds of what a report keeps.
const (
	MaxLeakURL    = 2048
	MaxLeakSource = 100
)
