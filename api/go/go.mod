module rill.dev/rill

go 1.21
