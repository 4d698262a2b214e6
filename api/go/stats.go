package rill

/*
#include <rill/rill.h>
*/
import "C"

import (
	"fmt"
	"math"
	"reflect"
	"time"
	"unsafe"
)

// Stats is a snapshot of a worker's counters since it was created (each read atomically;
// the set is not one instant), plus one entry per registered computation. Every field of
// C's rill_stats_t has a field here (stats_test.go checks it against the C struct and the
// counter table in core/stats/counters.h); all are monotonic except the gauges.
type Stats struct {
	MsgsIn         uint64 // frames decoded from sources
	BytesIn        uint64 // bytes received from sources
	MsgsDispatched uint64 // messages handed to computations (including ToComp)
	Batches        uint64 // computation calls
	MsgsOut        uint64 // frames queued for sinks (including dead letters)
	BytesOut       uint64 // bytes written to sinks
	HandoffMsgs    uint64 // messages passed to another loop thread
	ConnsAccepted  uint64 // source connections accepted
	ConnsOpen      uint64 // gauge: source connections open now
	ErrFrameShort  uint64 // connections closed: length below 12
	ErrFrameLong   uint64 // connections closed: length above MaxFrame
	ErrMidframe    uint64 // connections that closed inside a frame
	ErrConn        uint64 // socket errors, failed accepts, no memory for a connection
	ErrIdle        uint64 // connections closed: stalled inside a frame past the idle timeout
	ConnsRefused   uint64 // connections closed at once: the most open connections allowed were open
	UnknownComp    uint64 // frames for an unregistered computation
	CompErrors     uint64 // messages in batches that failed (error or panic)
	SinkErrors     uint64 // sink and peer link connection failures (connects, sends)
	ENOBUFS        uint64 // receive re-arms after the buffer ring ran dry (backpressure)
	Paused         uint64 // times a loop stopped reading its sources (backpressure)

	// Dropped frames, by where they were going. A frame whose send failed is queued
	// again, not dropped.
	SinkDropped    uint64 // for a sink: its buffer full, no memory, or still queued at the stop deadline
	PeerDropped    uint64 // for another cluster member: no link to it, no memory to queue it, or still queued at a drain deadline
	HandoffDropped uint64 // for another loop of this worker, or a ToComp on this loop: no memory

	// Source connections closed because the worker's partial frames were above its carry
	// budget (the largest carries first), and the bytes those partial frames hold now (a
	// gauge).
	ErrCarry   uint64
	CarryBytes uint64

	// Acknowledged delivery (sinks with DeliveryAcked): frames sent again after a
	// reconnect, times a link waited for credit, connections closed for a bad control
	// frame, and the bytes held until acknowledged (a gauge).
	Resent        uint64
	CreditWaits   uint64
	ErrControl    uint64
	RetainedBytes uint64

	// Acked sources (connections that began with HELLO): data frames that ran, resent
	// frames skipped because they had already run, ACKs sent, the points at which
	// frames waited for their sinks' acknowledgements and how long they waited (summed,
	// in nanoseconds), and the acked connections open (a gauge).
	AckedIn     uint64
	DupSkipped  uint64
	AcksSent    uint64
	AckBarriers uint64
	AckWaitNs   uint64
	AckedConns  uint64

	// ErrAuth counts peer connections refused because they did not prove the cluster's
	// credentials (a clustered worker with ClusterConfig.Auth).
	ErrAuth uint64

	// Gauges: current values, not monotonic.
	SinkQueuedBytes  uint64 // output waiting for sinks and peer links
	StageQueuedBytes uint64 // frames waiting to be handed to another loop
	HeldBuffers      uint64 // received buffers held back by backpressure
	SinksUp          uint64 // sink connections up, over all loops (one per loop and sink)
	StateBytes       uint64 // gauge: memory managed state holds (bytes)
	GroupsOwned      uint64 // gauge: key groups this member owns (with managed state registered)
	GroupsMoved      uint64 // key groups whose managed state this member sent to a new owner
	HandoffWaitNs    uint64 // time groups new to this member held their frames back, summed
	StateLostGroups  uint64 // key groups that ran on without their managed state
	StateRejected    uint64 // chunks of managed state refused
	GroupsPromoted   uint64 // key groups whose standby copy here took over from their owner
	Fenced           uint64 // times managed key groups were held back: the ZooKeeper session may have been lost
	GroupsWaiting    uint64 // gauge: key groups new to this member holding their frames back for their state
	StandbyBytes     uint64 // bytes of managed state sent to the standby copies of this member's groups

	// Cluster counters (zero for a worker that is not clustered).
	Forwarded   uint64 // frames sent to the member that owns their key
	PeerIn      uint64 // frames received from other members
	Misrouted   uint64 // frames from a member although this worker's view gives them elsewhere
	Rerouted    uint64 // frames queued for a member that left, routed again
	ViewChanges uint64 // views this worker adopted
	ZKErrors    uint64 // ZooKeeper failures, malformed member data

	Comps []CompStats // registered computations, by id
}

// CompStats are one registered computation's counters.
type CompStats struct {
	ID      uint32
	Name    string
	Msgs    uint64 // messages delivered
	Batches uint64 // Batch calls
	Errors  uint64 // messages in batches that returned an error or panicked
	Panics  uint64 // panics recovered from Batch and Flush

	// BatchTime is how long the Batch calls took, summed, measured by the loop around
	// each call (the cgo crossing included). BatchBuckets counts the calls by time taken:
	// [i] those that took more than BatchBucketBound(i-1) and at most BatchBucketBound(i)
	// (not cumulative); they add up to Batches once the loops are at rest.
	BatchTime    time.Duration
	BatchBuckets [NumBatchBuckets]uint64
}

// NumBatchBuckets is the number of buckets of CompStats.BatchBuckets.
const NumBatchBuckets = C.RILL_BATCH_BUCKETS

// BatchBucketBound returns the upper bound of CompStats.BatchBuckets[i]: 1, 2.5 and 5
// times each power of ten from 1µs to 1s, then math.MaxInt64 for the last bucket (and 0
// for i out of range).
func BatchBucketBound(i int) time.Duration {
	if i < 0 || i >= NumBatchBuckets {
		return 0
	}
	ns := uint64(C.rill_batch_bucket_le_ns(C.unsigned(i)))
	if ns > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}

// Stats returns the worker's counters and those of every registered computation.
func (w *Worker) Stats() (Stats, error) {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return Stats{}, opError("Stats", ErrClosed)
	}
	var st C.rill_stats_t
	if rc := C.rill_worker_stats(w.c, &st, C.size_t(unsafe.Sizeof(st))); rc < 0 {
		return Stats{}, opError("Stats", Errno(rc))
	}
	s := statsFromC(&st)
	for _, e := range w.sortedComps() {
		cs, err := w.compStats(e)
		if err != nil {
			continue // unregistered meanwhile
		}
		s.Comps = append(s.Comps, cs)
	}
	return s, nil
}

// CompStats returns the counters of the computation registered under id, or
// [ErrNotFound].
func (w *Worker) CompStats(id uint32) (CompStats, error) {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return CompStats{}, opError(fmt.Sprintf("CompStats %d", id), ErrClosed)
	}
	w.mu.Lock()
	e := w.comps[id]
	w.mu.Unlock()
	if e == nil {
		return CompStats{}, opError(fmt.Sprintf("CompStats %d", id), ErrNotFound)
	}
	cs, err := w.compStats(e)
	if err != nil {
		return CompStats{}, opError(fmt.Sprintf("CompStats %d", id), err)
	}
	return cs, nil
}

func (w *Worker) compStats(e *compEntry) (CompStats, error) {
	var cs C.rill_comp_stats_t
	if rc := C.rill_comp_stats(w.c, C.uint32_t(e.id), &cs, C.size_t(unsafe.Sizeof(cs))); rc < 0 {
		return CompStats{}, Errno(rc)
	}
	out := CompStats{ID: e.id, Name: e.name, Msgs: uint64(cs.msgs),
		Batches: uint64(cs.batches), Errors: uint64(cs.errors), Panics: e.panics.Load(),
		BatchTime: time.Duration(cs.batch_ns)}
	for i := range out.BatchBuckets {
		out.BatchBuckets[i] = uint64(cs.batch_buckets[i])
	}
	return out, nil
}

// statsFromC copies every field of a C snapshot.
func statsFromC(st *C.rill_stats_t) Stats {
	return Stats{
		MsgsIn:           uint64(st.msgs_in),
		BytesIn:          uint64(st.bytes_in),
		MsgsDispatched:   uint64(st.msgs_dispatched),
		Batches:          uint64(st.batches),
		MsgsOut:          uint64(st.msgs_out),
		BytesOut:         uint64(st.bytes_out),
		HandoffMsgs:      uint64(st.handoff_msgs),
		ConnsAccepted:    uint64(st.conns_accepted),
		ConnsOpen:        uint64(st.conns_open),
		ErrFrameShort:    uint64(st.err_frame_short),
		ErrFrameLong:     uint64(st.err_frame_long),
		ErrMidframe:      uint64(st.err_midframe),
		ErrConn:          uint64(st.err_conn),
		ErrIdle:          uint64(st.err_idle),
		ConnsRefused:     uint64(st.conns_refused),
		UnknownComp:      uint64(st.unknown_comp),
		CompErrors:       uint64(st.comp_errors),
		SinkErrors:       uint64(st.sink_errors),
		ENOBUFS:          uint64(st.enobufs),
		Paused:           uint64(st.paused),
		SinkDropped:      uint64(st.sink_dropped),
		PeerDropped:      uint64(st.peer_dropped),
		HandoffDropped:   uint64(st.handoff_dropped),
		ErrCarry:         uint64(st.err_carry),
		CarryBytes:       uint64(st.carry_bytes),
		Resent:           uint64(st.resent),
		CreditWaits:      uint64(st.credit_waits),
		ErrControl:       uint64(st.err_control),
		RetainedBytes:    uint64(st.retained_bytes),
		AckedIn:          uint64(st.acked_in),
		DupSkipped:       uint64(st.dup_skipped),
		AcksSent:         uint64(st.acks_sent),
		AckBarriers:      uint64(st.ack_barriers),
		AckWaitNs:        uint64(st.ack_wait_ns),
		AckedConns:       uint64(st.acked_conns),
		ErrAuth:          uint64(st.err_auth),
		SinksUp:          uint64(st.sinks_up),
		StateBytes:       uint64(st.state_bytes),
		GroupsOwned:      uint64(st.groups_owned),
		GroupsMoved:      uint64(st.groups_moved),
		HandoffWaitNs:    uint64(st.handoff_wait_ns),
		StateLostGroups:  uint64(st.state_lost_groups),
		StateRejected:    uint64(st.state_rejected),
		GroupsPromoted:   uint64(st.groups_promoted),
		Fenced:           uint64(st.fenced),
		GroupsWaiting:    uint64(st.groups_waiting),
		StandbyBytes:     uint64(st.standby_bytes),
		SinkQueuedBytes:  uint64(st.sink_queued_bytes),
		StageQueuedBytes: uint64(st.stage_queued_bytes),
		HeldBuffers:      uint64(st.held_buffers),
		Forwarded:        uint64(st.forwarded),
		PeerIn:           uint64(st.peer_in),
		Misrouted:        uint64(st.misrouted),
		Rerouted:         uint64(st.rerouted),
		ViewChanges:      uint64(st.view_changes),
		ZKErrors:         uint64(st.zk_errors),
	}
}

// statsProbe is for stats_test.go, which cannot use cgo itself: it returns the fields of
// C's rill_stats_t (names and kinds, in declaration order) and what statsFromC makes of a
// rill_stats_t whose field i holds i+1.
func statsProbe() (fields []reflect.StructField, s Stats) {
	var st C.rill_stats_t
	t := reflect.TypeOf(st)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		fields = append(fields, f)
		if f.Type.Kind() == reflect.Uint64 {
			*(*uint64)(unsafe.Add(unsafe.Pointer(&st), f.Offset)) = uint64(i + 1)
		}
	}
	return fields, statsFromC(&st)
}
