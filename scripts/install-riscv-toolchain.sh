#!/bin/sh
# Installs what building and cross-checking the examples needs: Debian's bare-metal
# RISC-V GCC (for the PVM2 images) and qemu's user-mode emulator (for the
# independent cross-check). Idempotent: does nothing when both are present.
set -eu

if command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 && command -v qemu-riscv64 >/dev/null 2>&1; then
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  gcc-riscv64-unknown-elf binutils-riscv64-unknown-elf qemu-user
