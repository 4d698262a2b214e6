module rill

go 1.21
