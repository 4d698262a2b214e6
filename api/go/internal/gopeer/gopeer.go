// Package gopeer is the pure-Go baseline that the rill binding's benchmark compares
// against: an idiomatic Go server for rill's v1 frames, built the way Wallaroo's Go API
// write-up describes — net + bufio, one goroutine per connection, and computations looked
// up per message in a 64-shard RWMutex map.
package gopeer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
)

// Func is a computation: it sees one message at a time.
type Func func(key uint64, payload []byte)

const shards = 64

type shard struct {
	mu sync.RWMutex
	m  map[uint32]Func
}

// Registry is a 64-shard RWMutex map from computation id to computation.
type Registry struct {
	s [shards]shard
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{}
	for i := range r.s {
		r.s[i].m = make(map[uint32]Func)
	}
	return r
}

// Register sets the computation for id.
func (r *Registry) Register(id uint32, f Func) {
	s := &r.s[id%shards]
	s.mu.Lock()
	s.m[id] = f
	s.mu.Unlock()
}

// Lookup returns the computation for id, or nil.
func (r *Registry) Lookup(id uint32) Func {
	s := &r.s[id%shards]
	s.mu.RLock()
	f := s.m[id]
	s.mu.RUnlock()
	return f
}

// Server accepts connections and runs every frame through the registry.
type Server struct {
	Reg *Registry
	// OnConnDone is called with a connection's message count when it closes.
	OnConnDone func(msgs uint64)

	ln net.Listener
	wg sync.WaitGroup
}

// Listen starts serving on addr ("127.0.0.1:0") and returns the bound address.
func (s *Server) Listen(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				n, _ := s.serve(c)
				if s.OnConnDone != nil {
					s.OnConnDone(n)
				}
			}()
		}
	}()
	return ln.Addr().String(), nil
}

var errFrame = errors.New("gopeer: bad frame length")

func (s *Server) serve(c net.Conn) (uint64, error) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	var hdr [16]byte
	buf := make([]byte, 64<<10)
	var n uint64
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
		l := binary.BigEndian.Uint32(hdr[0:4])
		if l < 12 || l > 1<<20 {
			return n, errFrame
		}
		p := int(l - 12)
		if p > len(buf) {
			buf = make([]byte, p)
		}
		if _, err := io.ReadFull(r, buf[:p]); err != nil {
			return n, err
		}
		if f := s.Reg.Lookup(binary.BigEndian.Uint32(hdr[4:8])); f != nil {
			f(binary.BigEndian.Uint64(hdr[8:16]), buf[:p])
		}
		n++
	}
}

// Close stops accepting and waits for the connections to end.
func (s *Server) Close() {
	s.ln.Close()
	s.wg.Wait()
}
