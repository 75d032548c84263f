package web

import "github.com/labstack/echo/v4"

// isHTMX reports whether htmx made the request.
func isHTMX(c echo.Context) bool { return c.Request().Header.Get("HX-Request") == "true" }

// wantsPartial reports whether the request should get only the changed
// part of a page: an htmx request that is not boosted, not a history
// restore and not aimed at the whole body.
func wantsPartial(c echo.Context) bool {
	h := c.Request().Header
	return h.Get("HX-Request") == "true" &&
		h.Get("HX-Boosted") != "true" &&
		h.Get("HX-History-Restore-Request") != "true" &&
		h.Get("HX-Request-Type") != "full"
}

// retarget tells htmx to swap the response somewhere else than the
// element's own target.
func retarget(c echo.Context, selector, swap string) {
	h := c.Response().Header()
	h.Set("HX-Retarget", selector)
	h.Set("HX-Reswap", swap)
}
