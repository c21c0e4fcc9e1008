# shellcheck shell=bash
# Sourced, not run: Debian packages downloaded with apt and unpacked by the scripts that use them
# (vm-test.sh, check-aarch64.sh), never installed on this machine. Define say and die first.
#
# apt_options: extra options for every apt-get and apt-cache call here, for a script that keeps
# package lists of its own (check-aarch64.sh reads arm64 ones); none by default.
apt_options=()

# runtime_closure PACKAGE...: the names of the packages and of everything they need at run time,
# one a line; without the packaging tools and perl (nothing is configured here).
runtime_closure() {
    apt-cache "${apt_options[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null | grep -v -e '^ ' -e '^<' | sort -u |
        grep -v -x -E 'cdebconf|debconf|dpkg|install-info|libdebian-installer4|libnewt0.52|libslang2|libtextwrap1|tar|readline-common|libreadline8|usrmerge|usr-is-merged|perl|perl-base|perl-modules-.*|libperl.*|lib.*-perl|libgdbm.*|libdb5.3|gawk|original-awk|libelogind0|init-system-helpers'
}

# download_debs DIR WHAT PACKAGE...: the packages (NAME, NAME:ARCH or NAME=VERSION) as .deb files
# in DIR, once: DIR/complete marks a finished download.
download_debs() {
    local dir=$1 what=$2; shift 2
    [ -f "$dir/complete" ] && return
    say "downloading $what"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && apt-get "${apt_options[@]}" download -q "$@" >/dev/null 2>&1) ||
        die "could not download $what" "check that apt reaches Debian's archive"
    touch "$dir/complete"
}

# download_closure DIR WHAT PACKAGE...: the packages and everything they need at run time, as
# .deb files in DIR, once.
download_closure() {
    local dir=$1 what=$2; shift 2
    [ -f "$dir/complete" ] && return
    # shellcheck disable=SC2046 # one word per package
    download_debs "$dir" "$what" $(runtime_closure "$@")
}
