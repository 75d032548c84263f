package capture

import (
	"errors"
	"math"
	"testing"
)

func TestOptionsNormalize(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		var o Options
		if err := o.Normalize(); err != nil {
			t.Fatal(err)
		}
		want := Options{Width: 1280, Height: 720, Format: "png", Quality: 80, DeviceScaleFactor: 1}
		if o != want {
			t.Fatalf("got %+v, want %+v", o, want)
		}
		if err := o.Normalize(); err != nil || o != want {
			t.Fatalf("a second Normalize changed %+v (%v)", o, err)
		}
	})
	t.Run("valid bounds", func(t *testing.T) {
		for _, o := range []Options{
			{Width: 100, Height: 100},
			{Width: 3840, Height: 3840, FullPage: true},
			{Format: "jpeg", Quality: 1},
			{Format: "webp", Quality: 100},
			{DelayMS: 10000},
			{DeviceScaleFactor: 3},
			{DeviceScaleFactor: 1.5},
		} {
			if err := o.Normalize(); err != nil {
				t.Errorf("%+v: %v", o, err)
			}
		}
		o := Options{Format: "jpg"}
		if err := o.Normalize(); err != nil || o.Format != FormatJPEG {
			t.Errorf(`"jpg" should mean jpeg: %+v %v`, o, err)
		}
	})
	tests := []struct {
		o       Options
		field   string
		message string
	}{
		{Options{Width: 99}, "width", "width must be between 100 and 3840"},
		{Options{Width: 3841}, "width", "width must be between 100 and 3840"},
		{Options{Width: -5}, "width", "width must be between 100 and 3840"},
		{Options{Height: 50}, "height", "height must be between 100 and 3840"},
		{Options{Height: 4000}, "height", "height must be between 100 and 3840"},
		{Options{Format: "gif"}, "format", `format must be "png", "jpeg" or "webp"`},
		{Options{Format: "PNG"}, "format", `format must be "png", "jpeg" or "webp"`},
		{Options{Quality: 101}, "quality", "quality must be between 1 and 100"},
		{Options{Quality: -1}, "quality", "quality must be between 1 and 100"},
		{Options{DelayMS: -1}, "delay_ms", "delay_ms must be between 0 and 10000"},
		{Options{DelayMS: 10001}, "delay_ms", "delay_ms must be between 0 and 10000"},
		{Options{DeviceScaleFactor: 0.5}, "device_scale_factor", "device_scale_factor must be between 1 and 3"},
		{Options{DeviceScaleFactor: 3.5}, "device_scale_factor", "device_scale_factor must be between 1 and 3"},
		{Options{DeviceScaleFactor: math.NaN()}, "device_scale_factor", "device_scale_factor must be between 1 and 3"},
		{Options{DeviceScaleFactor: math.Inf(1)}, "device_scale_factor", "device_scale_factor must be between 1 and 3"},
	}
	for _, tt := range tests {
		t.Run(tt.message, func(t *testing.T) {
			o := tt.o
			err := o.Normalize()
			var oe *OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("Normalize(%+v) = %v, want *OptionError", tt.o, err)
			}
			if oe.Field != tt.field || oe.Error() != tt.message {
				t.Fatalf("got %q: %q, want %q: %q", oe.Field, oe.Error(), tt.field, tt.message)
			}
		})
	}
}

func TestJobValidate(t *testing.T) {
	for _, tt := range []struct {
		job   Job
		field string
	}{
		{Job{}, "url"},
		{Job{URL: "https://example.com", HTML: "<p>"}, "html"},
		{Job{HTML: "<p>", Options: Options{Quality: 500}}, "quality"},
	} {
		err := tt.job.validate()
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != tt.field {
			t.Errorf("validate(%+v) = %v, want field %q", tt.job, err, tt.field)
		}
	}
	if err := (&Job{HTML: "<p>"}).validate(); err != nil {
		t.Errorf("HTML job: %v", err)
	}
}

// TestCaptureHeight: over every width, scale and format the bounds allow, a
// capture stays within MaxImagePixels and what its format can hold, keeps
// all of a page that fits, and always keeps a sensible height.
func TestCaptureHeight(t *testing.T) {
	for _, width := range []int{MinViewport, 1280, 1921, MaxViewport} {
		for _, scale := range []float64{1, 1.25, 1.5, 2, 2.75, 3} {
			for _, format := range []string{FormatPNG, FormatJPEG, FormatWebP} {
				for _, full := range []bool{false, true} {
					for _, tall := range []float64{MinViewport, 720, MaxViewport, MaxFullPageHeight, 100_000} {
						if !full && tall > MaxViewport {
							continue // a viewport is at most MaxViewport high
						}
						o := Options{Width: width, Height: MinViewport, DeviceScaleFactor: scale, Format: format, FullPage: full}
						h := captureHeight(o, tall)
						devW, devH := math.Ceil(float64(width)*scale), math.Ceil(h*scale)
						switch {
						case devW*devH > MaxImagePixels:
							t.Errorf("%+v, %v tall: %v×%v device pixels, over %d", o, tall, devW, devH, MaxImagePixels)
						case format == FormatWebP && devH > maxWebPSide:
							t.Errorf("%+v, %v tall: %v rows, more than WebP holds", o, tall, devH)
						case full && h > MaxFullPageHeight:
							t.Errorf("%+v, %v tall: %v CSS pixels, over the full page cap", o, tall, h)
						case h < 1000 && h < tall:
							t.Errorf("%+v, %v tall: clipped to %v CSS pixels", o, tall, h)
						case scale == 1 && format != FormatWebP && h < min(tall, MaxFullPageHeight):
							t.Errorf("%+v, %v tall: clipped to %v at scale 1", o, tall, h)
						}
					}
				}
			}
		}
	}
}
