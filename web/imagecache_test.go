package web

import (
	"testing"
	"time"

	"github.com/peekshot/peekshot/capture"
)

// TestImageCache: the signed links' images in memory. One request renders
// a link while the others wait; an image is kept until its link expires,
// within the byte budget, least recently used out first; an image over a
// quarter of the budget is not kept; a failed render keeps nothing.
func TestImageCache(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	id := func(b byte) linkID { return linkID{b} }
	img := func(b byte, size int, life time.Duration) *cachedImage {
		return &cachedImage{id: id(b), img: capture.Image{Data: make([]byte, size)}, etag: string(rune('a' + b)), expires: now.Add(life)}
	}
	// fill claims a link (it must be unclaimed and not kept) and keeps im.
	fill := func(t *testing.T, ic *imageCache, im *cachedImage) {
		t.Helper()
		if hit, wait := ic.claim(im.id, now); hit != nil || wait != nil {
			t.Fatalf("link %x: kept %v, rendering %v; want neither", im.id[0], hit != nil, wait != nil)
		}
		ic.done(im.id, im)
	}
	kept := func(ic *imageCache, b byte) bool {
		hit, wait := ic.claim(id(b), now)
		if hit == nil && wait == nil {
			ic.done(id(b), nil) // give the claim back
		}
		return hit != nil
	}

	t.Run("OneRendersTheOthersWait", func(t *testing.T) {
		ic := newImageCache(1000)
		if hit, wait := ic.claim(id(1), now); hit != nil || wait != nil {
			t.Fatal("the first claim should render")
		}
		_, wait := ic.claim(id(1), now)
		if wait == nil {
			t.Fatal("a second claim while the link renders does not wait")
		}
		ic.done(id(1), img(1, 10, time.Hour))
		select {
		case <-wait:
		default:
			t.Fatal("the waiting claim was not woken")
		}
		if hit, _ := ic.claim(id(1), now); hit == nil || hit.etag != "b" {
			t.Fatalf("after the render: %+v", hit)
		}
	})
	t.Run("FailedRenderKeepsNothing", func(t *testing.T) {
		ic := newImageCache(1000)
		ic.claim(id(2), now)
		ic.done(id(2), nil)
		if kept(ic, 2) {
			t.Fatal("a failed render was kept")
		}
	})
	t.Run("UntilTheLinkExpires", func(t *testing.T) {
		ic := newImageCache(1000)
		fill(t, ic, img(3, 10, time.Minute))
		if !kept(ic, 3) {
			t.Fatal("not kept")
		}
		if hit, wait := ic.claim(id(3), now.Add(time.Minute)); hit != nil || wait != nil {
			t.Fatal("kept past its link's expiry")
		}
		if ic.used != 0 {
			t.Fatalf("%d bytes counted after the expired image went", ic.used)
		}
	})
	t.Run("LeastRecentlyUsedGoesFirst", func(t *testing.T) {
		ic := newImageCache(1000) // at most 250 bytes an image
		fill(t, ic, img(4, 250, time.Hour))
		fill(t, ic, img(5, 250, time.Hour))
		fill(t, ic, img(6, 250, time.Hour))
		fill(t, ic, img(7, 250, time.Hour))
		if !kept(ic, 4) { // 4 is now the most recently used
			t.Fatal("4 not kept")
		}
		fill(t, ic, img(8, 250, time.Hour)) // over the budget: 5 goes
		if kept(ic, 5) || !kept(ic, 4) || !kept(ic, 6) || !kept(ic, 7) || !kept(ic, 8) {
			t.Fatal("the wrong image went")
		}
		if ic.used != 1000 {
			t.Fatalf("%d bytes counted, want 1000", ic.used)
		}
	})
	t.Run("TooLargeIsNotKept", func(t *testing.T) {
		ic := newImageCache(1000)
		fill(t, ic, img(9, 251, time.Hour))
		if kept(ic, 9) || ic.used != 0 {
			t.Fatalf("an image over a quarter of the budget was kept (%d bytes)", ic.used)
		}
	})
}
