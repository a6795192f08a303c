package nflog

import (
	"time"

	"github.com/weftnet/weft/internal/ir"
	"github.com/weftnet/weft/internal/policy"
)

// Key is what makes two events "alike" for flood control: the same source
// and destination (pods, or addresses where there is no pod), destination
// port (or ICMP type), protocol, direction and verdict. The source port
// differs between connection attempts and is not part of it.
type Key struct {
	Action    ir.LogAction
	Direction ir.Direction
	Protocol  policy.Protocol
	Src, Dst  string
	Port      uint16
	ICMPType  uint8
}

// KeyOf returns e's key.
func KeyOf(e *Event) Key {
	k := Key{Action: e.Action, Direction: e.Direction, Protocol: e.Protocol, Src: name(e.Src), Dst: name(e.Dst)}
	if e.Protocol.HasPorts() {
		k.Port = e.DstPort
	} else {
		k.ICMPType = e.ICMPType
	}
	return k
}

func name(e Endpoint) string {
	if e.Pod != "" {
		return e.Pod
	}
	return e.IP.String()
}

// Summary stands for Count events like Event (the first of a window, which
// was written in full) that came after it within Window.
type Summary struct {
	Event  Event
	Count  int
	Window time.Duration
}

// Summariser folds floods: the first event of a key is written in full;
// those like it within Window after it are only counted, and when the window
// ends one summary line says how many there were. Nothing is dropped
// silently: once MaxKeys keys are tracked, events of new keys are written
// in full. Not safe for concurrent use.
type Summariser struct {
	// Window is how long events like the first are folded (default 10s);
	// negative folds nothing: every event is written.
	Window  time.Duration
	MaxKeys int // default 10,000

	windows map[Key]*window
}

type window struct {
	first Event
	start time.Time
	count int
}

func (s *Summariser) defaults() {
	if s.Window == 0 {
		s.Window = 10 * time.Second
	}
	if s.MaxKeys <= 0 {
		s.MaxKeys = 10000
	}
	if s.windows == nil {
		s.windows = map[Key]*window{}
	}
}

// Seen records e at now. It returns write true when e is to be written in
// full, and ended, when e's key had a window that ended before now with
// events counted in it, the summary to write first.
func (s *Summariser) Seen(e Event, now time.Time) (write bool, ended *Summary) {
	s.defaults()
	if s.Window < 0 {
		return true, nil
	}
	k := KeyOf(&e)
	if w, ok := s.windows[k]; ok {
		if now.Sub(w.start) < s.Window {
			w.count++
			return false, nil
		}
		ended = s.end(k, w)
	}
	if len(s.windows) < s.MaxKeys {
		s.windows[k] = &window{first: e, start: now}
	}
	return true, ended
}

// Flush ends the windows that ended before now and returns their summaries
// (windows in which nothing more came end without one).
func (s *Summariser) Flush(now time.Time) []Summary {
	s.defaults()
	var out []Summary
	for k, w := range s.windows {
		if now.Sub(w.start) >= s.Window {
			if sum := s.end(k, w); sum != nil {
				out = append(out, *sum)
			}
		}
	}
	return out
}

func (s *Summariser) end(k Key, w *window) *Summary {
	delete(s.windows, k)
	if w.count == 0 {
		return nil
	}
	return &Summary{Event: w.first, Count: w.count, Window: s.Window}
}

// Tracked is the number of keys with an open window.
func (s *Summariser) Tracked() int { return len(s.windows) }
