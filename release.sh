#!/usr/bin/env bash
# Builds the release binaries of beuss: stripped, statically linked beuss-server and
# beuss for Linux on x86_64, aarch64 (Raspberry Pi 3/4/5 with a 64-bit OS), armv7
# (Pi 2/3/4 with a 32-bit OS) and arm (ARMv6: Pi 1 and Zero), all against musl libc.
#
#   ./release.sh                         all four targets
#   ./release.sh aarch64-unknown-linux-musl ...   only these targets
#
# Output, for the version in Cargo.toml:
#   dist/beuss-<version>-<target>.tar.gz   beuss-server, beuss, README.md, CHANGELOG.md,
#                                           LICENSE and beuss.service (the systemd unit
#                                           from contrib/) in a folder
#                                           beuss-<version>-<target>/
#   dist/SHA256SUMS                         checksums of the tarballs in dist/: this run's
#                                           lines replace their earlier ones, and lines for
#                                           other targets are kept while their tarballs
#                                           are there (so one-target runs add up)
# and a table of binary sizes. Tarballs are reproducible (sorted, owner 0, mtime of the
# last commit, gzip -n).
#
# How it links: every target links with rust-lld, the linker that ships with Rust, so
# no cross gcc is needed. Rust's musl targets are "self-contained": the target's
# rust-std component carries musl's libc.a, crt objects and libunwind.a, and rustc links
# them in. So the normal path is just `rustup target add <target>` plus
# CARGO_TARGET_<TRIPLE>_LINKER=rust-lld.
#
# The standard library is compiled with the binaries ("lean std"): `-Zbuild-std`, a
# nightly-only cargo flag that the stable compiler accepts under RUSTC_BOOTSTRAP=1,
# with rustup's rust-src component (added when missing). std then gets the release
# profile (fat LTO, panic=abort) and loses its `backtrace` feature, which a
# panic=abort binary has no use for: the binaries come out about 30 % smaller (x86_64:
# beuss-server 1077096 -> 784112 bytes), which keeps them under 1 MiB. A panic still
# prints its message and location, without a backtrace. BEUSS_PREBUILT_STD=1 builds
# with the prebuilt std instead (larger binaries); so does a machine without rust-src.
#
# Fallback, when rustup cannot download a target's rust-std (seen on mirrors that lack
# the armv7/arm musl components; the script says so when it takes this path):
#   - std is built from source with `-Zbuild-std`, a nightly-only cargo flag that the
#     stable compiler accepts under RUSTC_BOOTSTRAP=1 (no nightly toolchain is
#     installed); this needs rustup's rust-src component, which it adds;
#   - the C runtime (musl's crt1.o and libc.a, LLVM's libunwind.a) is compiled for that
#     exact CPU by zig, which `python3 -m pip install ziglang` fetches from PyPI; zig is
#     used as a C compiler only, the link is still rust-lld's.
# It needs network access to PyPI, python3 with pip, and about 500 MB of disk in
# BEUSS_TOOLS_DIR (zig itself, its cache and the C runtimes it built), outside the
# checkout so that later runs and other clones reuse it; the first run of a target
# takes a few minutes more. Delete that folder to reclaim the space.
#
# Environment:
#   CARGO_TARGET_DIR   where cargo builds (default ./target)
#   DIST_DIR           where tarballs go (default ./dist)
#   BEUSS_TOOLS_DIR    the fallback's zig, its cache and the C runtimes it built
#                      (default ~/.cache/beuss-release-tools: outside
#                      the checkout, so fresh clones on one machine reuse them)
#   ZIGLANG_VERSION    ziglang version for the fallback (default 0.17.1)
#   BEUSS_PREBUILT_STD 1: link the prebuilt std (no -Zbuild-std; larger binaries)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")"

ALL_TARGETS=(
    x86_64-unknown-linux-musl
    aarch64-unknown-linux-musl
    armv7-unknown-linux-musleabihf
    arm-unknown-linux-musleabihf
)
BINS=(beuss-server beuss)

if [[ $# -gt 0 ]]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi
for target in "${TARGETS[@]}"; do
    case " ${ALL_TARGETS[*]} " in
        *" $target "*) ;;
        *) echo "release.sh: unknown target $target (known: ${ALL_TARGETS[*]})" >&2; exit 2 ;;
    esac
done

# The version of the [package] section, not of a dependency.
VERSION=$(awk '
    /^\[/ { in_package = ($0 == "[package]") }
    in_package && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }
' Cargo.toml)
[[ -n "$VERSION" ]] || { echo "release.sh: no version in Cargo.toml" >&2; exit 1; }

TARGET_DIR=${CARGO_TARGET_DIR:-target}
mkdir -p "$TARGET_DIR"
TARGET_DIR=$(cd "$TARGET_DIR" && pwd)
export CARGO_TARGET_DIR=$TARGET_DIR
DIST=${DIST_DIR:-dist}
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
ZIGLANG_VERSION=${ZIGLANG_VERSION:-0.17.1}
TOOLS=${BEUSS_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/beuss-release-tools}

log() { printf '\n==> %s\n' "$*" >&2; }

# CARGO_TARGET_<TRIPLE>_<what> for a target triple.
target_var() {
    local triple=${1^^}
    echo "CARGO_TARGET_${triple//-/_}_$2"
}

# Installs the target's rust-std with rustup; false if that is not possible.
have_rust_std() {
    local target=$1
    command -v rustup >/dev/null 2>&1 || {
        # No rustup: trust that the toolchain has the target if rustc lists its libdir.
        [[ -d "$(rustc --print target-libdir --target "$target" 2>/dev/null)" ]]
        return
    }
    rustup target list --installed 2>/dev/null | grep -qx "$target" && return 0
    log "rustup target add $target"
    rustup target add "$target" >&2 2>"$TOOLS/rustup-$target.log" && return 0
    echo "release.sh: rustup could not install rust-std for $target:" >&2
    grep -m1 -i error "$TOOLS/rustup-$target.log" >&2 || true
    return 1
}

# Adds rustup's rust-src component (std's sources, for the lean std); false if that
# is not possible.
have_rust_src() {
    [[ -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library/std" ]] && return 0
    command -v rustup >/dev/null 2>&1 || return 1
    log "rustup component add rust-src"
    rustup component add rust-src >&2 2>"$TOOLS/rustup-rust-src.log" && return 0
    echo "release.sh: rustup could not add rust-src; building with the prebuilt std" >&2
    return 1
}

# The zig binary of the fallback, installed from PyPI on first use.
zig_bin() {
    local dir="$TOOLS/ziglang-$ZIGLANG_VERSION"
    if [[ ! -x "$dir/ziglang/zig" ]]; then
        log "pip install ziglang==$ZIGLANG_VERSION (C runtime for the fallback build)"
        python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
            --target "$dir" "ziglang==$ZIGLANG_VERSION" >&2
    fi
    echo "$dir/ziglang/zig"
}

# zig's name and CPU for a Rust target: the same baseline Rust's own targets use
# (arm: ARMv6 + VFPv2 as on the Pi 1/Zero; armv7: ARMv7-A + VFPv3-D16 + Thumb-2).
zig_target() {
    case $1 in
        arm-unknown-linux-musleabihf) echo "arm-linux-musleabihf arm1176jzf_s" ;;
        armv7-unknown-linux-musleabihf) echo "arm-linux-musleabihf generic+v7a+vfp3d16+thumb2" ;;
        aarch64-unknown-linux-musl) echo "aarch64-linux-musl generic" ;;
        x86_64-unknown-linux-musl) echo "x86_64-linux-musl baseline" ;;
    esac
}

# Builds crt1.o, libc.a, libzigc.a (the parts of libc zig writes in Zig) and
# libunwind.a for a target into $TOOLS/runtime-<zig version>-<target>, by linking an empty C program
# with zig and collecting what its final link line names.
musl_runtime() {
    local target=$1 out="$TOOLS/runtime-$ZIGLANG_VERSION-$1"
    if [[ -f "$out/crt1.o" && -f "$out/libc.a" && -f "$out/libunwind.a" ]]; then
        echo "$out"
        return
    fi
    local zig triple cpu work link_line
    zig=$(zig_bin)
    read -r triple cpu <<<"$(zig_target "$target")"
    work=$(mktemp -d)
    log "building musl and libunwind for $target with zig ($triple, cpu $cpu; a minute or two)"
    printf 'int main(void) { return 0; }\n' >"$work/empty.c"
    ZIG_GLOBAL_CACHE_DIR="$TOOLS/zig-cache" ZIG_LOCAL_CACHE_DIR="$work/cache" \
        "$zig" build-exe -target "$triple" -mcpu="$cpu" -OReleaseFast -fno-sanitize-c \
        -lc -lunwind --verbose-link "$work/empty.c" -femit-bin="$work/empty" \
        >"$work/zig.log" 2>&1 || { tail -20 "$work/zig.log" >&2; return 1; }
    link_line=$(grep -E '^(ld\.lld|.*ld\.lld) ' "$work/zig.log" | tail -1)
    mkdir -p "$out.tmp"
    local name path
    for name in crt1.o libc.a libzigc.a libunwind.a; do
        path=$(tr ' ' '\n' <<<"$link_line" | grep -E "/$name\$" | tail -1 || true)
        if [[ -z "$path" ]]; then
            [[ $name == libzigc.a ]] && continue # older zig: all of libc is in libc.a
            echo "release.sh: zig's link line names no $name:" >&2
            echo "$link_line" | cut -c1-2000 >&2
            return 1
        fi
        cp "$path" "$out.tmp/$name"
    done
    rm -rf "$out" "$work"
    mv "$out.tmp" "$out"
    echo "$out"
}

# Builds both binaries for one target, into $TARGET_DIR/<target>/release. Called as a
# plain statement, never inside `$(...) ||` or `if`, where bash would stop `set -e`
# from ending it at a failed build.
build_target() {
    local target=$1
    local linker_var
    linker_var=$(target_var "$target" LINKER)
    if have_rust_std "$target" && [[ ${BEUSS_PREBUILT_STD:-0} == 1 ]]; then
        log "cargo build --release --target $target (rust-lld, the prebuilt std)"
        env "$linker_var=rust-lld" \
            cargo build --release --locked --target "$target" "${BINS[@]/#/--bin=}" >&2
    elif have_rust_std "$target" && have_rust_src; then
        # The lean std: built with the release profile (fat LTO, one codegen unit,
        # panic=abort) and without its `backtrace` feature, so no DWARF reader,
        # symbol demangler and inflater ride along for backtraces that panic=abort
        # never prints; a panic still prints its message and location. Measured on
        # x86_64 (bytes): beuss-server 1077096 -> 784112, beuss 978632 -> 669968.
        log "cargo build --release --target $target (rust-lld, std built lean from rust-src)"
        env "$linker_var=rust-lld" RUSTC_BOOTSTRAP=1 \
            cargo build --release --locked --target "$target" "${BINS[@]/#/--bin=}" \
            -Zbuild-std=std,panic_abort -Zbuild-std-features= >&2
    else
        log "fallback for $target: std from rust-src, C runtime from zig, linked by rust-lld"
        if command -v rustup >/dev/null 2>&1; then
            rustup component add rust-src >&2
        fi
        local runtime flags_var
        runtime=$(musl_runtime "$target")
        flags_var=$(target_var "$target" RUSTFLAGS)
        local extra=""
        [[ -f "$runtime/libzigc.a" ]] && extra="-C link-arg=-lzigc"
        # link-self-contained=no: rustc must not look for the crt objects it would take
        # from rust-std; crt1.o comes from the runtime folder instead (musl needs no
        # crti/crtn/crtbegin/crtend: its _init is optional and it uses .init_array).
        # compiler-builtins-mem: zig's libc.a leaves memcpy, memmove, memset, memcmp
        # and bcmp to zig's compiler_rt, which would come as one big object; Rust's
        # compiler_builtins provides them instead, one section each.
        env "$linker_var=rust-lld" RUSTC_BOOTSTRAP=1 \
            "$flags_var=-C target-feature=+crt-static -C link-self-contained=no -C link-arg=$runtime/crt1.o -L native=$runtime $extra" \
            cargo build --release --locked --target "$target" "${BINS[@]/#/--bin=}" \
            -Zbuild-std=std,panic_abort -Zbuild-std-features=compiler-builtins-mem >&2
    fi
}

# Fails unless the file is a static ELF executable (no program interpreter).
check_static() {
    local bin=$1
    if command -v readelf >/dev/null 2>&1; then
        if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
            echo "release.sh: $bin is dynamically linked" >&2
            return 1
        fi
        if readelf -SW "$bin" | grep -qE ' \.symtab '; then
            echo "release.sh: $bin is not stripped" >&2
            return 1
        fi
    fi
}

# Fails if a binary is over the size budget of 1 MiB (README, "Install on a Raspberry
# Pi"); only warns for a build with the prebuilt std, which is larger by design.
check_size() {
    local bin=$1 size
    size=$(stat -c %s "$bin")
    ((size <= 1048576)) && return 0
    if [[ ${BEUSS_PREBUILT_STD:-0} == 1 ]]; then
        echo "release.sh: warning: $bin is $size bytes, over 1 MiB (prebuilt std)" >&2
        return 0
    fi
    echo "release.sh: $bin is $size bytes, over the 1 MiB budget" >&2
    return 1
}

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
mkdir -p "$TOOLS"
STAGE_ROOT=$(mktemp -d)
trap 'rm -rf "$STAGE_ROOT"' EXIT
declare -a TABLE=()
TARBALLS=()
for target in "${TARGETS[@]}"; do
    build_target "$target"
    out="$TARGET_DIR/$target/release"
    name="beuss-$VERSION-$target"
    stage="$STAGE_ROOT/$name"
    rm -rf "$stage"
    mkdir -p "$stage"
    for bin in "${BINS[@]}"; do
        check_static "$out/$bin"
        check_size "$out/$bin"
        cp "$out/$bin" "$stage/$bin"
    done
    cp README.md CHANGELOG.md LICENSE contrib/beuss.service "$stage/"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        -C "$STAGE_ROOT" -cf - "$name" | gzip -9n >"$DIST/$name.tar.gz"
    TARBALLS+=("$name.tar.gz")
    TABLE+=("$(printf '%-32s %12s %12s %12s' "$target" \
        "$(stat -c %s "$stage/beuss-server")" "$(stat -c %s "$stage/beuss")" \
        "$(stat -c %s "$DIST/$name.tar.gz")")")
done
# Merge into SHA256SUMS: earlier lines for tarballs rebuilt now, or gone from dist/,
# are dropped; the rest stay, so that building one target does not forget the others.
SUMS="$DIST/SHA256SUMS"
{
    if [[ -f "$SUMS" ]]; then
        while read -r hash file; do
            file=${file#\*} # sha256sum's binary-mode marker
            [[ -n "$file" && -f "$DIST/$file" ]] || continue
            case " ${TARBALLS[*]} " in *" $file "*) continue ;; esac
            printf '%s  %s\n' "$hash" "$file"
        done <"$SUMS"
    fi
    (cd "$DIST" && sha256sum "${TARBALLS[@]}")
} | sort -k2 >"$SUMS.tmp"
mv "$SUMS.tmp" "$SUMS"

echo
echo "beuss $VERSION: static, stripped binaries (bytes)"
printf '%-32s %12s %12s %12s\n' target beuss-server beuss tarball
printf '%s\n' "${TABLE[@]}"
echo
echo "Wrote ${TARBALLS[*]} to $DIST and updated SHA256SUMS there ($(wc -l <"$SUMS") tarballs)"
