package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// wireClient is a lean HTTP/1.1 client for the HTTP phases: one
// keep-alive connection per worker, the request written as prepared bytes
// and the answer read with no allocation. The generator shares the
// machine's CPUs with the server, so the less it spends per request, the
// more the figures describe the server (net/http's client costs more than
// twice as much).
type wireClient struct {
	addr    string
	request []byte
}

func newWireClient(req request) (*wireClient, error) {
	u, err := url.Parse(req.url)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: peekshot-load\r\n", req.method, u.RequestURI(), u.Host)
	if req.key != "" {
		fmt.Fprintf(&b, "X-Api-Key: %s\r\n", req.key)
	}
	b.WriteString("\r\n")
	return &wireClient{addr: u.Host, request: b.Bytes()}, nil
}

// conn is one keep-alive connection.
type wireConn struct {
	c  net.Conn
	br *bufio.Reader
	w  *wireClient
}

func (w *wireClient) dial(ctx context.Context) (*wireConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", w.addr)
	if err != nil {
		return nil, err
	}
	return &wireConn{c: c, br: bufio.NewReaderSize(c, 32<<10), w: w}, nil
}

func (c *wireConn) close() { c.c.Close() }

var errNotOK = errors.New("answer is not 200 OK")

// do sends the request and reads the whole answer.
func (c *wireConn) do() error {
	c.c.SetDeadline(time.Now().Add(time.Minute)) //nolint:errcheck // a dead connection fails below
	if _, err := c.c.Write(c.w.request); err != nil {
		return err
	}
	status, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	ok := bytes.HasPrefix(status, []byte("HTTP/1.1 200 "))
	length, chunked := -1, false
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	switch {
	case length >= 0:
		_, err = c.br.Discard(length)
	case chunked:
		err = c.discardChunks()
	default:
		err = errors.New("answer without a length")
	}
	if err == nil && !ok {
		err = fmt.Errorf("%w: %s", errNotOK, bytes.TrimSpace(status))
	}
	return err
}

func (c *wireConn) discardChunks() error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if _, err := c.br.Discard(int(size) + 2); err != nil {
			return err
		}
		if size == 0 {
			return nil
		}
	}
}
