package account

import (
	"context"
	"time"
)

// Event names what happened to an account or one of its keys (SPEC §7).
type Event string

// The events of the activity log.
const (
	EventAccountCreated     Event = "account.created"
	EventLoginSucceeded     Event = "login.succeeded"
	EventLoginFailed        Event = "login.failed"
	EventPasswordChanged    Event = "password.changed"
	EventProfileChanged     Event = "profile.changed"
	EventKeyCreated         Event = "key.created"
	EventKeyDeactivated     Event = "key.deactivated"
	EventKeyActivated       Event = "key.activated"
	EventKeyRotated         Event = "key.rotated"
	EventKeyRetired         Event = "key.retired"
	EventKeyDeleted         Event = "key.deleted"
	EventKeySettingsChanged Event = "key.settings_changed"
	EventKeyExpired         Event = "key.expired"
	EventKeyLeakReported    Event = "key.leak_reported"
	EventCouponRedeemed     Event = "coupon.redeemed"
)

// Events are every event, in the order filters list them.
var Events = []Event{
	EventAccountCreated, EventLoginSucceeded, EventLoginFailed, EventPasswordChanged, EventProfileChanged,
	EventKeyCreated, EventKeyDeactivated, EventKeyActivated, EventKeyRotated, EventKeyRetired,
	EventKeyDeleted, EventKeySettingsChanged, EventKeyExpired, EventKeyLeakReported, EventCouponRedeemed,
}

// ActorKind says who made a change.
type ActorKind string

// The actors of the activity log.
const (
	ActorSession  ActorKind = "session"  // a signed-in person in the dashboard
	ActorKey      ActorKind = "key"      // an API key, through the API
	ActorOperator ActorKind = "operator" // the command line
	ActorSystem   ActorKind = "system"   // PeekShot itself (an expiry, a retirement)
	ActorScanner  ActorKind = "scanner"  // a secret scanner's alert
)

// Actor is who made a change, from where.
type Actor struct {
	Kind      ActorKind
	KeyMasked string // the key that acted, for ActorKey
	IP        string
	UserAgent string
}

type actorKey struct{}

// WithActor is ctx carrying who acts, for the activity log the store
// writes with every change.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom is who acts in ctx: the system when nobody said.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Actor{Kind: ActorSystem}
}

// Activity is one entry of the log. Never a secret: keys appear masked.
type Activity struct {
	ID        int64
	UserID    int64
	At        time.Time
	Event     Event
	Actor     Actor
	KeyID     int64
	KeyLabel  string
	KeyMasked string
	Detail    string
}

// ActivityFilter narrows a page of the log.
type ActivityFilter struct {
	KeyID  int64 // 0: every key and the account
	Event  Event // "": every event
	Before int64 // entries older than this id (0: the newest)
	Limit  int
}

// ActivityKept is how long the log keeps an entry.
const ActivityKept = 366 * 24 * time.Hour
