module rill-wordcount

go 1.21

require rill v0.0.0

replace rill => ../../api/go
