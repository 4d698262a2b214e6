# Sourced by rill's scripts and shell tests (bash only: uses /dev/tcp).
#
# free_port: prints a loopback port nobody listens on. Ports are taken below the kernel's
# ephemeral range, so no outgoing connection holds one by chance; a port on which a
# connect is refused is free.
free_port()
{
    local low=32768 p _
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    [ "$low" -gt 11024 ] || low=32768
    for _ in $(seq 200); do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % (low - 11000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
