package account

import (
	"errors"
	"testing"
	"time"
)

func TestAPIKeyStatus(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	hour := time.Hour
	for _, tc := range []struct {
		name     string
		key      APIKey
		want     KeyStatus
		works    bool
		activate error
		rotate   error
	}{
		{"Active", APIKey{Active: true}, KeyActive, true, nil, nil},
		{"Inactive", APIKey{Active: false}, KeyInactive, false, nil, nil},
		{"ExpiresLater", APIKey{Active: true, ExpiresAt: now.Add(30 * 24 * hour)}, KeyActive, true, nil, nil},
		{"ExpiresSoon", APIKey{Active: true, ExpiresAt: now.Add(hour)}, KeyExpiring, true, nil, nil},
		{"ExpiresSoonInactive", APIKey{Active: false, ExpiresAt: now.Add(hour)}, KeyInactive, false, nil, nil},
		{"ExpiredAtTheInstant", APIKey{Active: true, ExpiresAt: now}, KeyExpired, false, ErrKeyExpired, ErrKeyExpired},
		{"ExpiredBeatsInactive", APIKey{Active: false, ExpiresAt: now.Add(-hour)}, KeyExpired, false, ErrKeyExpired, ErrKeyExpired},
		{"Retiring", APIKey{Active: true, RotatedAt: now.Add(-hour), RetiresAt: now.Add(hour)}, KeyRetiring, true, nil, ErrAlreadyRotated},
		{"RetiringDeactivated", APIKey{Active: false, RotatedAt: now.Add(-hour), RetiresAt: now.Add(hour)}, KeyInactive, false, nil, ErrAlreadyRotated},
		{"Retired", APIKey{Active: true, RotatedAt: now.Add(-2 * hour), RetiresAt: now.Add(-hour)}, KeyExpired, false, ErrKeyExpired, ErrKeyExpired},
		{"RotatedNow", APIKey{Active: true, RotatedAt: now, RetiresAt: now}, KeyExpired, false, ErrKeyExpired, ErrKeyExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.key.Status(now); got != tc.want {
				t.Fatalf("Status = %v, want %v", got, tc.want)
			}
			if got := tc.key.Works(now); got != tc.works {
				t.Fatalf("Works = %v", got)
			}
			if got := tc.key.Live(now); got != (tc.want != KeyExpired) {
				t.Fatalf("Live = %v", got)
			}
			if err := tc.key.CanActivate(now); !errors.Is(err, tc.activate) {
				t.Fatalf("CanActivate = %v, want %v", err, tc.activate)
			}
			if err := tc.key.CanRotate(now); !errors.Is(err, tc.rotate) {
				t.Fatalf("CanRotate = %v, want %v", err, tc.rotate)
			}
		})
	}
	keys := []APIKey{{Active: true}, {Active: false}, {ExpiresAt: now}, {RetiresAt: now.Add(hour)}}
	if n := LiveKeys(keys, now); n != 3 {
		t.Fatalf("LiveKeys = %d, want 3", n)
	}
}

func TestCouponStatus(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		coupon Coupon
		want   CouponStatus
		err    error
	}{
		{"Active", Coupon{}, CouponActive, nil},
		{"BeforeExpiry", Coupon{ExpiresAt: now.Add(time.Second)}, CouponActive, nil},
		{"ExpiredAtTheInstant", Coupon{ExpiresAt: now}, CouponExpired, ErrCouponExpired},
		{"Disabled", Coupon{DisabledAt: now.Add(-time.Hour)}, CouponDisabled, ErrCouponDisabled},
		{"DisabledBeatsExpired", Coupon{DisabledAt: now, ExpiresAt: now}, CouponDisabled, ErrCouponDisabled},
		{"Exhausted", Coupon{MaxRedemptions: 2, Redemptions: 2}, CouponExhausted, ErrCouponExhausted},
		{"RoomLeft", Coupon{MaxRedemptions: 2, Redemptions: 1}, CouponActive, nil},
		{"Unlimited", Coupon{Redemptions: 1_000_000}, CouponActive, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.coupon.Status(now); got != tc.want {
				t.Fatalf("Status = %v, want %v", got, tc.want)
			}
			if err := tc.coupon.CanRedeem(now); !errors.Is(err, tc.err) {
				t.Fatalf("CanRedeem = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestNewCouponCheck(t *testing.T) {
	for name, nc := range map[string]NewCoupon{
		"EmptyCode":    {Code: " ", Credits: 1},
		"SpaceInCode":  {Code: "TWO WORDS", Credits: 1},
		"ZeroCredits":  {Code: "ZERO"},
		"HugeCredits":  {Code: "HUGE", Credits: MaxCouponCredits + 1},
		"NegativeMax":  {Code: "MAX", Credits: 1, MaxRedemptions: -1},
		"NonASCIICode": {Code: "CAFÉ", Credits: 1},
	} {
		t.Run(name, func(t *testing.T) {
			if err := nc.Check(); !errors.Is(err, ErrCouponInvalid) {
				t.Fatalf("Check = %v", err)
			}
		})
	}
	if err := (NewCoupon{Code: " welcome-50 ", Credits: 50}).Check(); err != nil {
		t.Fatal(err)
	}
}

func TestKeyEndsAt(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	later := at.Add(time.Hour)
	for _, tc := range []struct {
		name       string
		k          APIKey
		want       time.Time
		wantExpiry bool
	}{
		{"Neither", APIKey{}, time.Time{}, false},
		{"Expiry", APIKey{ExpiresAt: at}, at, true},
		{"Retirement", APIKey{RetiresAt: at}, at, false},
		{"ExpiryFirst", APIKey{ExpiresAt: at, RetiresAt: later}, at, true},
		{"RetirementFirst", APIKey{ExpiresAt: later, RetiresAt: at}, at, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.k.EndsAt(); !got.Equal(tc.want) || tc.k.EndIsExpiry() != tc.wantExpiry {
				t.Fatalf("ends at %v (expiry %v), want %v (%v)", got, tc.k.EndIsExpiry(), tc.want, tc.wantExpiry)
			}
		})
	}
}

func TestGracePeriod(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1 hour", 24 * time.Hour: "24 hours", 7 * 24 * time.Hour: "7 days", 48 * time.Hour: "2 days", 90 * time.Minute: "1h30m0s",
	} {
		if got := (Grace{For: d}).Period(); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}
