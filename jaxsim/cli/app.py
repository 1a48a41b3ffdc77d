"""``jaxsim app [STORE.zarr | FOLDER | FILE ...] [--port P] [--no-browser] [--host H]``."""

from __future__ import annotations

import argparse
import socket
import sys
import threading

EPILOG = """\
examples:
  jaxsim app results/default.zarr               # open a store; the browser opens by itself
  jaxsim app results/ ../shared/data/pears      # pick stores and decay files in these folders
  jaxsim app --port 8060 --no-browser           # then open http://127.0.0.1:8060/

Pages: /sweep (browse a store), /model (play with a model), /fit (fit a decay file). The server
listens on 127.0.0.1 only, unless --host names another interface. Stop it with Ctrl-C.
Needs the app extra: pip install -e ".[app]".
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "app", help="local web app: browse sweeps, play with a model, fit decays",
        description="Start the jaxsim explorer, a local web app (no internet needed), and open "
        "it in the browser. Paths may be sweep stores, folders (searched two levels deep for "
        "stores and decay files) or decay files; with none, the current folder is searched.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="sweep stores (STORE.zarr), folders, or decay files to offer (default: the current folder is searched)")
    p.add_argument("--port", type=int, default=8050,
                   help="port (default 8050; 0 picks a free one; a busy port falls back to a "
                   "free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1, this machine only; any "
                   "other value lets other machines reach the app, with a warning)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser (default: open the page in the default browser)")
    p.set_defaults(func=run)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def run(args) -> int:
    from jaxsim.physics.errors import ParameterError

    try:
        from jaxsim.app.server import create_app, is_loopback, serve
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in ("dash", "plotly", "flask"):
            raise ParameterError(
                f"the app needs the 'app' extra ({err.name} is not installed): "
                "pip install -e \".[app]\"") from None
        raise
    if not 0 <= args.port < 65536:
        raise ParameterError(f"--port = {args.port}: expected 0..65535")
    if not is_loopback(args.host):
        print(f"jaxsim app: WARNING: listening on {args.host}: anyone who can reach this "
              "machine on the network can use the app (run fits, read the stores and files "
              "given). There is no login. Use the default 127.0.0.1 unless you mean it.",
              file=sys.stderr)
    port = args.port
    if port == 0 or not _port_free(args.host, port):
        new = free_port(args.host)
        if port:
            print(f"jaxsim app: port {port} is busy: using {new}", file=sys.stderr)
        port = new
    app = create_app(args.paths)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{shown}:{port}/sweep"
    print(f"jaxsim app: serving on {url} (pages /sweep, /model, /fit); Ctrl-C stops it",
          file=sys.stderr)
    if not args.no_browser:
        import webbrowser

        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    serve(app, host=args.host, port=port)
    return 0
