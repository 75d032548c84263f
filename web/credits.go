package web

import (
	"context"
	"sync"
)

// reservations counts renders in flight per user, so a balance of N admits
// at most N concurrent renders and none is wasted on a render that could
// not be paid for. The debit itself happens in the store after success.
type reservations struct {
	mu       sync.Mutex
	inFlight map[int64]int64
}

func newReservations() *reservations { return &reservations{inFlight: make(map[int64]int64)} }

// reserve admits one render if the user's balance, read under the lock so
// that no debit can slip between the read and the count, covers it and
// every render already in flight.
func (r *reservations) reserve(ctx context.Context, userID int64, balance func(context.Context, int64) (int64, error)) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := balance(ctx, userID)
	if err != nil {
		return false, err
	}
	if b-r.inFlight[userID] <= 0 {
		return false, nil
	}
	r.inFlight[userID]++
	return true, nil
}

func (r *reservations) release(userID int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight[userID] <= 1 {
		delete(r.inFlight, userID)
		return
	}
	r.inFlight[userID]--
}
