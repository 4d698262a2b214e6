package rill

/*
#include <rill/rill.h>
*/
import "C"

import "unsafe"

// Message must have rill_msg_t's layout: batches are reinterpreted, not copied.
var _ = [1]struct{}{}[unsafe.Sizeof(Message{})-C.sizeof_rill_msg_t]
var _ = [1]struct{}{}[unsafe.Offsetof(Message{}.len)-unsafe.Offsetof(C.rill_msg_t{}.len)]
var _ = [1]struct{}{}[unsafe.Offsetof(Message{}.CompID)-unsafe.Offsetof(C.rill_msg_t{}.comp_id)]
var _ = [1]struct{}{}[unsafe.Offsetof(Message{}.Key)-unsafe.Offsetof(C.rill_msg_t{}.key)]
