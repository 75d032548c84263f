package web

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

func (s *Server) handleCoupons(c echo.Context) error {
	return s.renderCoupons(c, http.StatusOK, templates.CouponsProps{})
}

// renderCoupons answers with the Redeem Coupon tab around a form's state:
// the whole page, or for an htmx post the panel (and the balance chip out
// of band when a redemption changed it).
func (s *Server) renderCoupons(c echo.Context, status int, p templates.CouponsProps) error {
	u := currentUser(c)
	history, err := s.store.Redemptions(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	p.CSRF, p.Credits, p.Redemptions, p.Now = s.csrf(c), u.Credits, history, s.cfg.Now()
	if p.Redeemed != nil {
		p.Credits = p.Redeemed.Balance
	}
	if isHTMX(c) && c.Request().Method == http.MethodPost {
		return s.render(c, status, templates.CouponsPanelUpdate(p))
	}
	return s.renderTab(c, status, templates.TabCoupons, templates.CouponsPanel(p))
}

func (s *Server) handleRedeemCoupon(c echo.Context) error {
	u := currentUser(c)
	raw := c.Request().PostFormValue("code")
	typed, msg := cleanText("Coupon code", raw, account.MaxCouponCodeLen)
	if msg == "" && typed == "" {
		msg = "Enter a coupon code."
	}
	if msg != "" {
		return s.renderCoupons(c, http.StatusUnprocessableEntity, templates.CouponsProps{Code: displayable(raw), Error: msg})
	}
	code := account.NormalizeCouponCode(typed)
	coupon, balance, err := s.store.RedeemCoupon(c.Request().Context(), u.ID, code)
	if msg := redeemRefusal(err, code); msg != "" {
		return s.renderCoupons(c, http.StatusUnprocessableEntity, templates.CouponsProps{Code: typed, Error: msg})
	}
	if errors.Is(err, account.ErrNotFound) {
		return accountGone(c)
	}
	if err != nil {
		return err
	}
	s.log.Info("coupon redeemed", "user_id", u.ID, "coupon_id", coupon.ID, "credits", coupon.Credits, "request_id", c.Get(ctxReqID))
	u.Credits = balance
	result := templates.RedeemResult{Code: coupon.Code, Credits: coupon.Credits, Balance: balance}
	if !isHTMX(c) {
		return s.redirectDone(c, templates.TabCoupons.URL(), templates.FlashSuccess, result.Message())
	}
	return s.renderCoupons(c, http.StatusOK, templates.CouponsProps{Redeemed: &result})
}

// redeemRefusal is what the user is told when a code can't be redeemed, or
// "" when err is not such a refusal. Each reason has its own message.
func redeemRefusal(err error, code string) string {
	quoted := "“" + code + "”"
	switch {
	case errors.Is(err, account.ErrCouponUnknown):
		return "There's no coupon with the code " + quoted + ". Check it for typos and try again."
	case errors.Is(err, account.ErrCouponDisabled):
		return "The coupon " + quoted + " is no longer valid."
	case errors.Is(err, account.ErrCouponExpired):
		return "The coupon " + quoted + " has expired."
	case errors.Is(err, account.ErrCouponExhausted):
		return "The coupon " + quoted + " has been fully redeemed: all of its uses are taken."
	case errors.Is(err, account.ErrCouponRedeemed):
		return "You've already redeemed " + quoted + ". Each coupon can be used once per account."
	}
	return ""
}
