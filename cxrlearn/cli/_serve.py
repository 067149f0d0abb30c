"""``cxrlearn serve``: a saved model behind an HTTP API and a review page.

The model is loaded once, before the server starts (the safe ``.skops``
format; a pickle only with ``--allow-pickle``). FastAPI and uvicorn (the
``serve`` extra) are imported only when the command runs. Nothing is
decided here: labels come from the model's ``predict``
(:mod:`cxrlearn.serve`).
"""

import ipaddress
from pathlib import Path

from ._common import CLIError, add_model_file_argument, load_model_from_args, status

#: Names a loopback-bound server answers to (DNS rebinding protection).
LOOPBACK_NAMES = ["127.0.0.1", "localhost"]


def add_parser(sub):
    parser = sub.add_parser(
        "serve",
        help="serve a saved model over HTTP: JSON API and review page (research use)",
        description="Load MODEL once and serve POST /predict (PNG, JPEG or DICOM files "
        "in; the model's own label, probabilities, threshold and optionally a Grad-CAM "
        "overlay out), a review page at /, /health, /model and /openapi.json. Binds to "
        "127.0.0.1 unless told otherwise. A research tool, not a medical device.",
    )
    add_model_file_argument(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default: %(default)s, this machine only; "
                             "0.0.0.0 exposes the unauthenticated API to the network: "
                             "put a reverse proxy with TLS and authentication in front)")
    parser.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB",
                        help="largest request body in MiB (default: %(default)g)")
    parser.add_argument("--max-files", type=int, default=16,
                        help="most files in one request (default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=32,
                        help="most images computed together when concurrent requests "
                             "are batched; 1 turns batching off (default: %(default)s)")
    parser.add_argument("--gradcam-layer", default=None, metavar="LAYER",
                        help="the layer Grad-CAM explains (default: the last convolution)")
    parser.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                        help="a Host header the server answers to (repeat it); default: "
                             "127.0.0.1 and localhost when bound to loopback, any otherwise")
    parser.add_argument("--root-path", default="",
                        help="the path prefix a reverse proxy serves the app under, "
                             "e.g. /cxr")
    parser.set_defaults(run=run_serve)


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_serve(args):
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_files < 1 or args.max_batch < 1:
        raise CLIError("--max-upload-mb, --max-files and --max-batch must be positive")
    import importlib

    try:
        for name in ("fastapi", "python_multipart"):
            importlib.import_module(name)
        import uvicorn
    except ImportError as exc:
        raise CLIError(f"cxrlearn serve needs the 'serve' extra ({exc.name} is missing): "
                       "pip install 'cxrlearn[serve]'") from exc
    from ..serve import create_app, model_file_version

    loopback = _is_loopback(args.host)
    allowed = args.allowed_host or (LOOPBACK_NAMES if loopback else None)
    model = load_model_from_args(args)
    try:
        app = create_app(model, model_id=Path(args.model).stem,
                         model_version=model_file_version(args.model),
                         max_upload_bytes=int(args.max_upload_mb * 2**20),
                         max_files=args.max_files, max_batch=args.max_batch,
                         gradcam_layer=args.gradcam_layer, allowed_hosts=allowed)
    except TypeError as exc:  # not a model that reads image files
        raise CLIError(str(exc)) from exc
    if not loopback:
        status(f"warning: serving on {args.host}: anyone who can reach this port can use "
               "the API (no authentication, no TLS); put a reverse proxy in front")
    status(f"serving {args.model} on http://{args.host}:{args.port}{args.root_path}/ "
           "-- research use only, not a medical device (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, root_path=args.root_path,
                log_level="info", server_header=False, limit_concurrency=64,
                timeout_graceful_shutdown=10)
    return 0
