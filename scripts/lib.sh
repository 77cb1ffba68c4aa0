# Shared shell helpers for the project's scripts. Source it: `. scripts/lib.sh`.

# A free TCP port on 127.0.0.1 (asks the kernel for one, then releases it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Installs the Debian packages given as arguments when any is missing (root or sudo).
apt_install_missing() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Waits until 127.0.0.1:$1 accepts connections (or fails after $2 seconds, default 20).
wait_port() {
  local port=$1 limit=${2:-20} i=0
  while ! python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; do
    i=$((i+1))
    [ $i -ge $((limit*10)) ] && { echo "port $port did not open within ${limit}s" >&2; return 1; }
    sleep 0.1
  done
}
