package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/peekshot/peekshot/capture"
	"github.com/peekshot/peekshot/metrics"
	"github.com/peekshot/peekshot/secretscan"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/web"
)

// Shutdown after SIGTERM takes at most shutdownGrace for in-flight requests
// to finish, then handlerDrain for the ones cut off to return, then
// closeTimeout to write pending key usage: with closing Chromium and the
// database, the process is gone within 10 s.
const (
	shutdownGrace = 7 * time.Second
	handlerDrain  = time.Second
	closeTimeout  = time.Second
)

// inFlight counts the requests being handled, so that shutdown can wait for
// those it cut off before the renderer and the database close under them.
type inFlight struct{ n atomic.Int64 }

func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.n.Add(1)
		defer f.n.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// wait polls until no request is handled or d has passed, and reports
// whether they all returned.
func (f *inFlight) wait(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for f.n.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// openURL is where a person on this machine opens the dashboard.
func openURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port)) + "/"
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

func serve(ctx context.Context, cfg config, stdout io.Writer) error {
	log := newLogger(cfg.LogFormat, stdout)
	// Read before anything is created or started: a bad file stops here.
	var scanningKeys *secretscan.Keys
	if cfg.SecretScanningKeys != "" {
		var err error
		if scanningKeys, err = secretscan.LoadKeys(cfg.SecretScanningKeys); err != nil {
			return fmt.Errorf("PEEKSHOT_SECRET_SCANNING_KEYS: %w", err)
		}
		log.Info("secret-scanning alerts accepted", "keys", scanningKeys.Len(), "file", cfg.SecretScanningKeys)
	}
	secret, err := cfg.sessionSecret()
	if err != nil {
		return err
	}
	db, err := openDatabase(ctx, cfg, false)
	if err != nil {
		return err
	}
	// The API's hot path reads keys through the cache, which every change
	// committed by any instance empties of what it changed.
	st := store.NewCached(db, nil)
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
	browserPath, browserVersion := renderer.Browser()
	log.Info("renderer browser", "path", browserPath, "version", browserVersion)
	if cfg.AllowPrivateTargets {
		log.Warn("PEEKSHOT_ALLOW_PRIVATE_TARGETS is on: the API will render loopback and private addresses")
	}

	webCfg := web.Config{SessionSecret: secret, RateLimit: cfg.RateLimit, TrustedProxies: cfg.TrustedProxies,
		SecretScanningKeys: scanningKeys}
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		m := metrics.New(metrics.Sources{Renderer: renderer, KeyCache: st})
		webCfg.Metrics = m
		if metricsSrv, err = serveMetrics(cfg.MetricsAddr, m, log); err != nil {
			return err
		}
		defer metricsSrv.Close()
	}
	srv, err := web.NewServer(webCfg, st, renderer, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	var handling inFlight
	httpSrv := &http.Server{
		Handler:           handling.wrap(srv),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("PeekShot is listening", "addr", ln.Addr().String(), "url", openURL(ln.Addr()), "db", db.where)
	if db.created {
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
		log.Warn("shutdown grace period over; cutting off the remaining requests", "requests", handling.n.Load())
		httpSrv.Close()
		// Their contexts end with their connections; let them return.
		if !handling.wait(handlerDrain) {
			log.Warn("requests still running after they were cut off", "requests", handling.n.Load())
		}
	}
	// A fresh context: the grace period's may be over, and pending key
	// usage must still be written.
	closeCtx, cancelClose := context.WithTimeout(context.Background(), closeTimeout)
	defer cancelClose()
	errClose := srv.Close(closeCtx)
	if errClose != nil {
		log.Error("write pending API key usage", "err", errClose)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if metricsSrv != nil {
		metricsSrv.Close() // nothing left to count
	}
	// Chromium stops, then the database checkpoints its WAL and closes (the
	// deferred calls find them closed).
	if err := renderer.Close(); err != nil {
		log.Warn("stop the renderer", "err", err)
	}
	errStore := st.Close()
	if errStore != nil {
		log.Error("close the database", "err", errStore)
	}
	log.Info("stopped")
	return errors.Join(errClose, errStore)
}

// serveMetrics starts the listener of its own that PEEKSHOT_METRICS_ADDR
// asks for: Prometheus's text at GET /metrics, nothing else. Close stops it.
func serveMetrics(addr string, m *metrics.Metrics, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on PEEKSHOT_METRICS_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve metrics", "err", err)
		}
	}()
	log.Info("Prometheus metrics are served", "addr", ln.Addr().String(), "url", openURL(ln.Addr())+"metrics")
	return srv, nil
}
