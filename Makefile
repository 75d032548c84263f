# PeekShot. `make run` starts the server; `make test` runs every test,
# browser tests included. Both set up what they need on a fresh machine.

GO        ?= go
BIN       := bin/peekshot
CHROMIUM  ?= /usr/bin/chromium
# The renderer's browser (capture.HeadlessShellPath); CHROMIUM runs the
# dashboard's browser tests and the load run's baseline.
HEADLESS_SHELL ?= /usr/lib/chromium/chromium-headless-shell
PKGS      := ./...

.PHONY: build run test generate fmt vet chromium screenshots vendor-htmx vendor-swagger-ui clean soak bench load

build: generate
	$(GO) build -trimpath -o $(BIN) ./cmd/peekshot

# Starts the server on :8080 with its database in data/peekshot.db. It
# renders with chromium-headless-shell unless PEEKSHOT_CHROME says otherwise.
run: chromium build
	./$(BIN) serve

test: chromium generate
	$(GO) vet $(PKGS)
	@$(POSTGRES_CHECK); \
	$(GO) test -race -count=1 -timeout 15m $(PKGS) && \
	if [ "$$PEEKSHOT_TEST_POSTGRES" = required ]; then \
		echo "Handler tests again, on PostgreSQL:"; \
		PEEKSHOT_TEST_STORE=postgres $(GO) test -race -count=1 -timeout 10m -skip '$(NOT_AGAIN_ON_POSTGRES)' ./web/; \
	fi

# The PostgreSQL tests (the store's conformance suite, many instances, the
# crash test and the handler tests) run whenever a server answers: the one
# in PEEKSHOT_TEST_DATABASE_URL, else the local one on 127.0.0.1:5432. When
# none does, one line says so and how to run them.
POSTGRES_CHECK = if [ -n "$$PEEKSHOT_TEST_DATABASE_URL" ] || timeout 2 bash -c '</dev/tcp/127.0.0.1/5432' 2>/dev/null; then \
		export PEEKSHOT_TEST_POSTGRES=required; \
	else \
		echo "PostgreSQL tests NOT run: no server on 127.0.0.1:5432. Start one (pg_ctlcluster --skip-systemctl-redirect 15 main start, or apt-get install postgresql) or set PEEKSHOT_TEST_DATABASE_URL=postgres://…, then run make test again."; \
	fi
# Handler tests that need no second run on PostgreSQL: browser tests (the
# pages are the same), renderer faults, and what only SQLite has (its file).
NOT_AGAIN_ON_POSTGRES = TestDatabaseGoesAway|TestBrowser|TestAPIRendererCrash|TestAPIHostilePages|TestAPIRenderSSRF|TestAPIRenderTimeout|TestAPIRendersURL|TestAPIRendersHTMLAndFullPage|TestStorageFull

# The long reliability runs, not part of `make test` (which runs short
# versions of both): a soak of SOAK_CLIENTS clients for SOAK_DURATION, and
# CRASH_ROUNDS kill -9 rounds of the real binary. See docs/reliability.md.
SOAK_DURATION ?= 60s
SOAK_CLIENTS  ?= 100
CRASH_ROUNDS  ?= 100
soak: chromium generate
	PEEKSHOT_SOAK_DURATION=$(SOAK_DURATION) PEEKSHOT_SOAK_CLIENTS=$(SOAK_CLIENTS) \
		$(GO) test -count=1 -timeout 30m -run '^TestSoak$$' -v ./web/
	PEEKSHOT_CRASH_ROUNDS=$(CRASH_ROUNDS) \
		$(GO) test -count=1 -timeout 30m -run '^TestCrashSafety$$' -v ./cmd/peekshot/

# Every benchmark (key verification at 100,000 keys, the API Keys tab, whole
# API requests, renders), not part of `make test`. See docs/performance.md.
bench: chromium generate
	$(GO) test -run '^$$' -bench . -benchmem -timeout 15m $(PKGS)

# The load run: bin/peekshot on a temporary database and a free loopback
# port, HTTP throughput and latency, memory, renders through the API next to
# direct chromedp renders, and the peers (today's settings on chromium, a
# direct chromedp server and a Playwright server, which npm installs into
# cmd/peekshot-load/playwright/node_modules the first time), in about seven
# minutes. See docs/performance.md. LOAD_FLAGS adds flags, e.g.
# LOAD_FLAGS='-database-url postgres://postgres@127.0.0.1:5432/peekshot_load -sections http'
# for the HTTP section on PostgreSQL.
LOAD_FLAGS ?=
load: chromium build
	$(GO) run ./cmd/peekshot-load -bin $(BIN) -chrome $(HEADLESS_SHELL) -baseline-chrome $(CHROMIUM) $(LOAD_FLAGS)

generate:
	$(GO) tool templ generate -log-level error

fmt:
	$(GO) tool templ fmt templates
	gofmt -w $$(git ls-files '*.go' | grep -v '_templ.go$$')

vet:
	$(GO) vet $(PKGS)

# Installs Debian's chromium-headless-shell (the renderer) and chromium (the
# dashboard's browser tests) when either is missing (as root, through
# apt-get); otherwise says exactly what to install.
chromium:
	@missing=""; \
	[ -x "$(HEADLESS_SHELL)" ] || missing="$$missing chromium-headless-shell"; \
	[ -x "$(CHROMIUM)" ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing$$missing (apt-get install$$missing)…"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "Missing:$$missing. Install with: sudo apt-get install$$missing"; \
			echo "(PeekShot renders with $(HEADLESS_SHELL); the browser tests use $(CHROMIUM);"; \
			echo " HEADLESS_SHELL=... and CHROMIUM=... point at other builds)"; exit 1; \
		fi; \
	fi

# Refreshes the pictures in docs/ from the browser test.
screenshots: chromium generate
	PEEKSHOT_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestBrowser' ./web/

# Re-vendors htmx from its npm package (needs npm and the registry).
HTMX_VERSION ?= 4.0.1
vendor-htmx:
	cd $$(mktemp -d) && npm pack htmx.org@$(HTMX_VERSION) >/dev/null && tar xzf htmx.org-$(HTMX_VERSION).tgz && \
		cp package/dist/htmx.min.js $(CURDIR)/static/js/vendor/htmx.min.js && \
		cp package/LICENSE $(CURDIR)/static/js/vendor/htmx.LICENSE

# Re-vendors Swagger UI, which renders /docs/api, from its npm package
# (needs npm and the registry): the bundle and its stylesheet, without their
# source-map comments (the maps are not vendored).
SWAGGER_UI_VERSION ?= 5.35.0
SWAGGER_UI_DIR := $(CURDIR)/static/js/vendor/swagger-ui
vendor-swagger-ui:
	cd $$(mktemp -d) && npm pack swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null && tar xzf swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz && \
		mkdir -p $(SWAGGER_UI_DIR) && \
		grep -v '^//# sourceMappingURL=' package/swagger-ui-bundle.js > $(SWAGGER_UI_DIR)/swagger-ui-bundle.js && \
		sed 's|/\*# sourceMappingURL=[^*]*\*/||' package/swagger-ui.css > $(SWAGGER_UI_DIR)/swagger-ui.css && \
		cp package/LICENSE $(SWAGGER_UI_DIR)/LICENSE && cp package/NOTICE $(SWAGGER_UI_DIR)/NOTICE && \
		cp package/swagger-ui-bundle.js.LICENSE.txt $(SWAGGER_UI_DIR)/swagger-ui-bundle.js.LICENSE.txt

clean:
	rm -rf bin
