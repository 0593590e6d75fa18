#!/usr/bin/env bash
# Builds every policies/std-* crate to wasm32-unknown-unknown and writes the modules to
# stdlib/policies/<crate-name>.wasm, byte-reproducibly.
#
#   policies/build.sh          build and update stdlib/policies/*.wasm
#   policies/build.sh --check  build in a temporary folder; exit 1 (listing the files) if any
#                              byte differs from the committed stdlib/policies/*.wasm
#
# Toolchain: Debian's rustc-web (a rustc with the wasm32 targets), rust-web-src (std's sources,
# for -Zbuild-std) and lld (wasm-ld):  apt-get install rustc-web rust-web-src lld
# Set KILN_WASM_RUSTC to use another rustc with the same abilities.
#
# Optimization: opt-level 3, not s: modules are 22% larger and take 8% longer to compile cold,
# and run 24% faster (BENCHMARKS.md); modules are compiled once per machine, and run on every
# compile. WebAssembly SIMD (simd128) is on: memchr and std's byte searches use it, which makes
# the file-scanning policies (net, run, secret) 5-10% faster; integer SIMD is deterministic, and
# the host canonicalizes NaNs. Bulk memory (memory.copy for memcpy) is on by default in Rust
# >= 1.87; with 1.85 the modules were 10-15% slower. The modules start with 4 MiB of memory
# (the SDK's allocator uses it before growing): most calls never grow memory, which saves the
# kernel work of mapping it (3% of an N = 1 000 compile that evaluates every policy); pages
# are only committed when touched.
#
# Reproducibility: a fixed toolchain, release profile settings given here (not taken from
# Cargo.toml), --remap-path-prefix for the checkout, cargo home, target folder and std's
# sources, and symbols stripped: the bytes do not depend on where the repository is checked out.
# Takes about 1-2 minutes on 2 cores (std is rebuilt with -Zbuild-std).
#
# The bytes depend on the compiler, so the build records `rustc --version` in
# stdlib/policies/TOOLCHAIN. --check compares bytes when this machine has that compiler; when
# it has another one (Debian moved rustc-web), a byte comparison means nothing: --check then
# still builds every module from source (it must compile and carry its metadata), says which
# compilers differ, and exits 0 -- or 1 with KILN_WASM_STRICT=1.
set -euo pipefail

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
}

mode=build
case "${1:-}" in
"") ;;
--check) mode=check ;;
-h | --help)
    usage
    exit 0
    ;;
*)
    usage >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"
out_dir="$root/stdlib/policies"

rustc="${KILN_WASM_RUSTC:-/usr/bin/rustc}"
die() {
    echo "policies/build.sh: $*" >&2
    exit 2
}
[ -x "$rustc" ] || die "$rustc not found; install Debian's rustc-web, rust-web-src and lld (apt-get install rustc-web rust-web-src lld)"
"$rustc" --print target-list | grep -qx wasm32-unknown-unknown ||
    die "$rustc has no wasm32-unknown-unknown target; install Debian's rustc-web"
sysroot_src="$("$rustc" --print sysroot)/lib/rustlib/src/rust"
[ -f "$sysroot_src/library/Cargo.lock" ] ||
    die "std's sources are missing at $sysroot_src; install Debian's rust-web-src"
command -v wasm-ld >/dev/null || die "wasm-ld not found; install Debian's lld"
toolchain="$("$rustc" --version)"
toolchain_file="$out_dir/TOOLCHAIN"
recorded="$(cat "$toolchain_file" 2>/dev/null || true)"

# The crates: every policies/std-*/ with a Cargo.toml, by package name.
crates=()
for manifest in policies/std-*/Cargo.toml; do
    [ -f "$manifest" ] || continue
    name="$(sed -n 's/^name *= *"\([^"]*\)".*/\1/p' "$manifest" | head -n 1)"
    [ -n "$name" ] || die "no package name in $manifest"
    crates+=("$name")
done

if [ "$mode" = check ]; then
    target_dir="$(mktemp -d "${TMPDIR:-/tmp}/kiln-wasm-policies.XXXXXX")"
    trap 'rm -rf "$target_dir"' EXIT
    locked=(--locked)
else
    target_dir="$root/target/wasm-policies"
    locked=()
fi
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

started=$SECONDS
if [ ${#crates[@]} -gt 0 ]; then
    packages=()
    for name in "${crates[@]}"; do packages+=(-p "$name"); done
    # Paths are remapped so that no checkout-, user- or machine-specific path reaches the
    # module (panic messages name source files). When several prefixes match, rustc uses the
    # last one, so the target folder (inside the checkout) comes after the checkout.
    # CARGO_ENCODED_RUSTFLAGS (separated by 0x1f) keeps paths with spaces intact.
    flags=(
        "--remap-path-prefix=$cargo_home=/cargo"
        "--remap-path-prefix=$root=/kiln"
        "--remap-path-prefix=$target_dir=/target"
        "--remap-path-prefix=$sysroot_src=/rust"
        "-Ctarget-feature=+simd128,+bulk-memory"
        "-Clink-arg=--initial-memory=4194304"
    )
    encoded="$(printf '%s\x1f' "${flags[@]}")"
    env \
        RUSTC="$rustc" \
        RUSTC_BOOTSTRAP=1 \
        RUSTC_WRAPPER= \
        RUSTFLAGS= \
        CARGO_ENCODED_RUSTFLAGS="${encoded%$'\x1f'}" \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld \
        CARGO_INCREMENTAL=0 \
        CARGO_PROFILE_RELEASE_OPT_LEVEL=3 \
        CARGO_PROFILE_RELEASE_LTO=fat \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
        CARGO_PROFILE_RELEASE_PANIC=abort \
        CARGO_PROFILE_RELEASE_DEBUG=false \
        CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=false \
        CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=false \
        CARGO_PROFILE_RELEASE_STRIP=symbols \
        cargo build --release --quiet "${locked[@]}" \
        --target wasm32-unknown-unknown \
        -Zbuild-std=std,panic_abort \
        --target-dir "$target_dir" \
        "${packages[@]}"
fi

# Compare or copy. Every stdlib/policies/*.wasm is produced here, so one without a crate is
# stale.
built_dir="$target_dir/wasm32-unknown-unknown/release"
status=0
differ=()
for name in "${crates[@]}"; do
    built="$built_dir/${name//-/_}.wasm"
    [ -f "$built" ] || die "cargo did not produce $built (is $name a cdylib?)"
    # The metadata section must survive linking and stripping.
    grep -q 'kiln\.policy\.v1' "$built" ||
        die "$name.wasm has no kiln.policy.v1 section (is kiln_policy! invoked?)"
    if [ "$mode" = check ]; then
        cmp -s "$built" "$out_dir/$name.wasm" || differ+=("stdlib/policies/$name.wasm")
    else
        mkdir -p "$out_dir"
        cp "$built" "$out_dir/$name.wasm.tmp"
        chmod 644 "$out_dir/$name.wasm.tmp"
        mv "$out_dir/$name.wasm.tmp" "$out_dir/$name.wasm"
        printf '%-40s %8d bytes  sha256 %s\n' "stdlib/policies/$name.wasm" \
            "$(wc -c <"$out_dir/$name.wasm")" "$(sha256sum "$out_dir/$name.wasm" | cut -c1-16)"
    fi
done
for committed in "$out_dir"/*.wasm; do
    [ -f "$committed" ] || continue
    name="$(basename "$committed" .wasm)"
    case " ${crates[*]} " in
    *" $name "*) continue ;;
    esac
    if [ "$mode" = check ]; then
        differ+=("stdlib/policies/$name.wasm (no policies/std-* crate builds it)")
    else
        rm "$committed"
        echo "removed stale stdlib/policies/$name.wasm"
    fi
done

if [ "$mode" = build ]; then
    echo "$toolchain" >"$toolchain_file.tmp"
    mv "$toolchain_file.tmp" "$toolchain_file"
fi

if [ "$mode" = check ] && [ "$recorded" != "$toolchain" ]; then
    echo "policies/build.sh --check: the committed modules were built by '${recorded:-an unrecorded compiler}'," >&2
    echo "  this machine has '$toolchain': their bytes cannot be compared." >&2
    echo "  All ${#crates[@]} module(s) build from source with this compiler and carry their metadata;" >&2
    if [ ${#differ[@]} -gt 0 ]; then
        echo "  ${#differ[@]} differ in bytes (expected with another compiler)." >&2
    fi
    [ "${KILN_WASM_STRICT:-0}" = 1 ] && exit 1
    exit 0
elif [ "$mode" = check ]; then
    if [ ${#differ[@]} -gt 0 ]; then
        echo "policies/build.sh --check: these modules differ from a fresh build of their source:" >&2
        printf '  %s\n' "${differ[@]}" >&2
        echo "run policies/build.sh and commit the result" >&2
        status=1
    else
        echo "policies/build.sh --check: ${#crates[@]} module(s) match their source ($((SECONDS - started)) s)"
    fi
else
    echo "built ${#crates[@]} module(s) in $((SECONDS - started)) s"
fi
exit $status
