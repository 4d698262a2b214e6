module rill-wordcount

go 1.21

require rill.dev/rill v0.0.0

replace rill.dev/rill => ../../api/go
