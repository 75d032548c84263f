package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/peekshot/peekshot/capture"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/web"
)

// shutdownGrace bounds how long in-flight requests may take to finish
// after SIGTERM.
const shutdownGrace = 8 * time.Second

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

func serve(ctx context.Context, cfg config, stdout io.Writer) error {
	log := newLogger(cfg.LogFormat, stdout)
	secret, err := cfg.sessionSecret()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DB, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()

	renderer, err := capture.New(ctx, capture.Config{
		ChromePath:  cfg.Chrome,
		Concurrency: cfg.RenderConcurrency,
		Guard:       capture.NewGuard(capture.GuardConfig{AllowPrivate: cfg.AllowPrivateTargets}),
		Logger:      log.With("component", "renderer"),
	})
	if err != nil {
		return err
	}
	defer renderer.Close()
	if cfg.AllowPrivateTargets {
		log.Warn("PEEKSHOT_ALLOW_PRIVATE_TARGETS is on: the API will render loopback and private addresses")
	}

	srv, err := web.NewServer(web.Config{SessionSecret: secret, RateLimit: cfg.RateLimit}, st, renderer, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("PeekShot is listening", "addr", ln.Addr().String(), "db", cfg.DB)
	if st.Created() {
		fmt.Fprint(stdout, firstStartHint(cfg))
	}
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	errShutdown := httpSrv.Shutdown(shutdownCtx)
	if errors.Is(errShutdown, context.DeadlineExceeded) {
		log.Warn("shutdown grace period over; closing remaining connections")
		httpSrv.Close()
	}
	errClose := srv.Close(shutdownCtx)
	log.Info("stopped")
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return errors.Join(errClose)
}
