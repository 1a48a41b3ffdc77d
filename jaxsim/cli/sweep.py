"""``jaxsim sweep SPEC --out STORE.zarr``: run (or resume) a parameter grid into a zarr store."""

from __future__ import annotations

import sys

EPILOG = """\
examples:
  jaxsim sweep sweeps/default.toml --out out/default.zarr      # run, or resume after a kill
  jaxsim sweep default --out out/default.zarr --overwrite      # start again
  jaxsim sweep sweeps/paper_fig3.toml --out out/fig3.zarr --chunk 256
  jaxsim sweep default --out out/part.zarr --limit-points 20000   # stop early; rerun to finish
  srun jaxsim sweep sweeps/gpu_large.toml --out /scratch/large.zarr --distributed

At the end it prints, per lifetime summary, how many points its window flag marks
("N of M points window-limited in tau_mean_pl (window_tail_pl > 0.00154): lengthen t1").
Ctrl-C stops after the chunks already written ("interrupted after N of M chunks"); the same
command resumes. The store opens with xarray.open_zarr(STORE) once complete
(jaxsim.studies.store.open_sweep reads unfinished stores too). Times in a spec (t1, curve
times) are in s; parameters in SI-cm units. See docs/sweep.md.
"""


def register(subparsers) -> None:
    from jaxsim.cli._help import Formatter, models_and_parameters

    p = subparsers.add_parser(
        "sweep", help="run a parameter grid from a TOML spec into a resumable zarr store",
        description="Run the grid of a sweep spec in chunks; each finished chunk is written to "
        "a zarr store. Rerunning the same command resumes: finished chunks are skipped.",
        epilog=EPILOG + "\n" + models_and_parameters(
            "parameters (axes and [fixed] of a spec; SI-cm units)"), formatter_class=Formatter)
    p.add_argument("spec", help="TOML sweep spec: a path, or the name of a spec in sweeps/ "
                   "(e.g. default)")
    p.add_argument("--out", required=True, metavar="STORE.zarr",
                   help="zarr store folder to write or resume (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing store at --out and start again (off by default: an "
                   "existing store of the same spec is resumed, one of another spec refused)")
    p.add_argument("--chunk", type=int, default=None, metavar="N",
                   help="points solved together in one batch (default: the spec's chunk_size, "
                   "4096 when it has none); part of the store's identity")
    p.add_argument("--limit-points", type=int, default=None, metavar="N",
                   help="stop after about N points (whole chunks) in this run; rerun to continue "
                   "(default: run every remaining point)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on stderr (shown by default)")
    g = p.add_argument_group("several processes / hosts (jax.distributed)")
    g.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize(), which auto-detects SLURM, Open MPI, "
                   "... (off by default: one process)")
    g.add_argument("--coordinator", metavar="HOST:PORT",
                   help="coordinator address for jax.distributed.initialize (implies "
                   "--distributed; default: auto-detected)")
    g.add_argument("--num-processes", type=int, metavar="P",
                   help="number of processes, with --coordinator (default: auto-detected)")
    g.add_argument("--process-id", type=int, metavar="I",
                   help="this process's index 0..P-1, with --coordinator (default: "
                   "auto-detected)")
    p.set_defaults(func=run)


def run(args) -> int:
    from jaxsim.physics.errors import ParameterError
    from jaxsim.io.spec_files import load_sweep_spec

    if args.distributed or args.coordinator:
        # before anything touches a JAX backend (validating the spec does)
        import jax

        kw = {}
        if args.coordinator:
            kw = dict(coordinator_address=args.coordinator, num_processes=args.num_processes,
                      process_id=args.process_id)
        jax.distributed.initialize(**kw)
    spec = load_sweep_spec(args.spec)
    if args.chunk is not None:
        if args.chunk < 1:
            raise ParameterError(f"--chunk = {args.chunk}: expected a positive integer")
        spec = spec.replace(chunk_size=args.chunk)
    if args.limit_points is not None and args.limit_points < 1:
        raise ParameterError(f"--limit-points = {args.limit_points}: expected a positive integer")
    import jax

    from jaxsim.studies.sweep import run_sweep

    pid, count = jax.process_index(), jax.process_count()
    if pid == 0:
        print(f"sweep {spec.name or args.spec}: {spec.n_points:,} points "
              f"({' x '.join(f'{a.name} {len(a)}' for a in spec.axes)}), "
              f"chunks of {spec.chunk_size}, model {spec.model.name}, {spec.dtype}; "
              f"{len(jax.local_devices())} local device(s), {count} process(es)",
              file=sys.stderr)
    try:
        res = run_sweep(spec, args.out, overwrite=args.overwrite,
                        limit_points=args.limit_points, progress=not args.no_progress)
    except KeyboardInterrupt:
        from jaxsim.cli import Interrupted

        raise Interrupted(interrupted_message(spec, args.out, args.overwrite)) from None
    rate = f"{res.points_per_s:,.4g} points/s" if res.points_run else "nothing to do"
    state = "complete" if res.complete else "incomplete: rerun the same command to resume"
    print(f"[process {pid}/{count}] {res.points_run:,} points in {res.chunks_run} chunks, "
          f"{res.seconds:.1f} s ({rate}); {res.failed_points} failed; store {res.path}: {state}",
          file=sys.stderr)
    if pid == 0 and res.complete:
        print_window_counts(args.out)
    return 0


def print_window_counts(out) -> None:
    """One line per lifetime summary whose window flag marks some points (docs/sweep.md,
    "Window-limited lifetimes")."""
    from jaxsim.studies.sweep import window_limited_counts

    for c in window_limited_counts(out):
        if c.limited:
            print(f"{c.limited:,} of {c.points:,} points window-limited in {c.summary} "
                  f"({c.where}): lengthen t1 (docs/sweep.md)", file=sys.stderr)


def interrupted_message(spec, out, overwrite: bool = False) -> str:
    """What a Ctrl-C left: ``interrupted after N of M chunks; rerun ... to resume`` (finished
    chunks are on disk with their done markers; a rerun computes only the others)."""
    from jaxsim.studies.store import open_store

    again = ("rerun the same command without --overwrite to resume" if overwrite
             else "rerun the same command to resume")
    try:
        store = open_store(out, spec)
        done, total = int(store.done_mask().sum()), store.n_chunks
    except Exception:  # noqa: BLE001 (interrupted before the store was made: nothing to keep)
        return "interrupted before the first chunk; rerun the same command to start"
    return f"interrupted after {done} of {total} chunks; {again}"
