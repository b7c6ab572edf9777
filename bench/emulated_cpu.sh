# shellcheck shell=bash
# Sourced by bench_firstrun.sh and bench_arm64.sh: what an arm64 root under qemu-user sees of its CPUs.
#
# qemu-user passes the host's /proc/cpuinfo (x86) through, and the host's /sys lists the host's CPUs:
# onnxruntime's cpuinfo then segfaults at import (with the host's /sys) or prints "Error in cpuinfo"
# lines on every start (without /sys), which a Raspberry Pi never does. So the root gets what a Pi 4
# has there: /sys/devices/system/cpu/{possible,present,online} on a tmpfs and a Cortex-A72's
# /proc/cpuinfo (bound over the root's), one entry per host CPU. A real arm64 machine needs none of it.

emulated_cpu_view() {  # ROOT: after its /proc is mounted
    local root=$1 n last i
    n=$(nproc)
    last=$((n - 1))
    mountpoint -q "$root/sys" || mount -t tmpfs -o size=1m,mode=755 edge-asc-sys "$root/sys"
    mkdir -p "$root/sys/devices/system/cpu"
    for f in possible present online; do echo "0-$last" >"$root/sys/devices/system/cpu/$f"; done
    mkdir -p "$root/run"
    for ((i = 0; i < n; i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"
    done >"$root/run/edge-asc-bench-cpuinfo"
    printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B (emulated: qemu-user)\n' >>"$root/run/edge-asc-bench-cpuinfo"
    mountpoint -q "$root/proc/cpuinfo" || mount --bind "$root/run/edge-asc-bench-cpuinfo" "$root/proc/cpuinfo"
}
