package capture

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// packetTrap listens where a page's WebRTC and WebTransport would send
// packets around the proxy: a loopback UDP port (STUN and TURN servers, a
// remote host candidate, a WebTransport server), a loopback TCP port (a
// TURN-over-TCP server and a passive TCP candidate, which must only be
// reached through the proxy, and the guard refuses loopback), and the
// multicast DNS group, for a remote candidate named <label>.local.
type packetTrap struct {
	udpPort, tcpPort int
	label            string // the .local name's label, unique to this trap
	udp, tcp, mdns   atomic.Int64
	mdnsListening    bool
}

func newPacketTrap(t *testing.T) *packetTrap {
	t.Helper()
	p := &packetTrap{label: randomLabel(t)}
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	p.udpPort = udp.LocalAddr().(*net.UDPAddr).Port
	go readPackets(udp, func([]byte) { p.udp.Add(1) })

	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	p.tcpPort = tcp.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			p.tcp.Add(1)
			c.Close()
		}
	}()

	// Multicast sent by a local process loops back to local members of the
	// group where the machine has a multicast interface. Other mDNS traffic
	// on the machine does not count: only queries for this trap's name.
	if mdns, err := net.ListenMulticastUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}); err == nil {
		p.mdnsListening = true
		t.Cleanup(func() { mdns.Close() })
		go readPackets(mdns, func(b []byte) {
			if bytes.Contains(b, []byte(p.label)) {
				p.mdns.Add(1)
			}
		})
	} else {
		t.Logf("no multicast DNS listener on this machine (%v): only UDP and TCP are checked", err)
	}
	return p
}

func readPackets(c net.PacketConn, seen func([]byte)) {
	buf := make([]byte, 64<<10)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		seen(buf[:n])
	}
}

func randomLabel(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (p *packetTrap) counts() string {
	return fmt.Sprintf("%d UDP datagrams, %d TCP connections, %d multicast DNS queries", p.udp.Load(), p.tcp.Load(), p.mdns.Load())
}

// page is HTML that tries to reach the trap in every way WebRTC and
// WebTransport allow, from the page, from an about:blank child (reached
// synchronously, before any script of its own could run), from a srcdoc
// frame and from a worker.
func (p *packetTrap) page() string {
	return fmt.Sprintf(`<!doctype html><body style="margin:0;background:#0000ff"><script>
const U = %d, T = %d, LABEL = %q;
async function rtc(W) {
  const PC = W.RTCPeerConnection || W.webkitRTCPeerConnection;
  if (!PC) return;
  const a = new PC({iceServers: [
    {urls: "stun:127.0.0.1:" + U},
    {urls: "turn:127.0.0.1:" + U, username: "u", credential: "p"},
    {urls: "turn:127.0.0.1:" + T + "?transport=tcp", username: "u", credential: "p"},
  ]});
  const b = new PC();
  a.createDataChannel("x");
  a.onicecandidate = e => { if (e.candidate) b.addIceCandidate(e.candidate).catch(() => {}) };
  const offer = await a.createOffer(); await a.setLocalDescription(offer);
  await b.setRemoteDescription(offer);
  const answer = await b.createAnswer(); await b.setLocalDescription(answer);
  await a.setRemoteDescription(answer);
  for (const c of [
    "candidate:1 1 udp 2122260223 127.0.0.1 " + U + " typ host",
    "candidate:2 1 tcp 1518280447 127.0.0.1 " + T + " typ host tcptype passive",
    "candidate:3 1 udp 2122260223 " + LABEL + ".local " + U + " typ host",
    "candidate:4 1 udp 2122260223 localhost " + U + " typ host",
  ]) await a.addIceCandidate({candidate: c, sdpMid: "0", sdpMLineIndex: 0}).catch(() => {});
}
function transport(W) {
  try { new W.WebTransport("https://127.0.0.1:" + U + "/").ready.catch(() => {}) } catch (e) {}
}
rtc(window).catch(() => {});
transport(window);
const blank = document.createElement("iframe");
document.body.appendChild(blank);
rtc(blank.contentWindow).catch(() => {});
const frame = document.createElement("iframe");
frame.srcdoc = "<script>(" + rtc + ")(window).catch(() => {})<\/script>";
document.body.appendChild(frame);
new Worker(URL.createObjectURL(new Blob(["(" + transport + ")(self)"])));
</script></body>`, p.udpPort, p.tcpPort, p.label)
}

// trapWait is how long a page gets to send its packets: ICE starts its
// checks within milliseconds and repeats them.
const trapWait = 2500 * time.Millisecond

// TestWebRTCCannotBypassTheGuard: a page's WebRTC and WebTransport send no
// packet to a loopback UDP or TCP port, nor a multicast DNS query, on either
// browser PeekShot runs with, from any frame or worker. The controls run the
// same page in the same browsers without PeekShot's settings, where it does
// reach the trap: the test would fail without the fix.
func TestWebRTCCannotBypassTheGuard(t *testing.T) {
	for _, chrome := range []string{HeadlessShellPath, FullChromiumPath} {
		requireBrowser(t, chrome)
		t.Run(filepath.Base(chrome), func(t *testing.T) {
			t.Parallel()
			trap := newPacketTrap(t)
			c, _ := newRenderer(t, Config{ChromePath: chrome}, http.NotFoundHandler())
			img, err := c.Render(context.Background(), Job{HTML: trap.page(), Options: Options{Width: 200, Height: 200, DelayMS: int(trapWait / time.Millisecond)}})
			if err != nil {
				t.Fatalf("the page must render (its connections fail): %v", err)
			}
			wantColor(t, decode(t, img), 190, 190, blue, 0)
			if trap.udp.Load()+trap.tcp.Load()+trap.mdns.Load() != 0 {
				t.Fatalf("the page reached the trap around the proxy: %s", trap.counts())
			}
		})
		t.Run(filepath.Base(chrome)+" control", func(t *testing.T) {
			t.Parallel()
			trap := newPacketTrap(t)
			unguardedRender(t, chrome, trap.page(), trapWait)
			// Multicast DNS shows only where it can loop back; UDP is what
			// every machine can check.
			if trap.udp.Load() == 0 {
				t.Fatalf("the control sent nothing (%s): the page does not exercise WebRTC", trap.counts())
			}
			t.Logf("without PeekShot's settings: %s", trap.counts())
		})
	}
}

// unguardedRender loads html in a plain headless browser, with no proxy and
// none of PeekShot's settings, and waits.
func unguardedRender(t *testing.T, chrome, html string, wait time.Duration) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	}))
	t.Cleanup(srv.Close)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 30*time.Second)
	defer cancelTimeout()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatalf("control browser: %v", err)
	}
	time.Sleep(wait)
}
