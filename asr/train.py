"""Train the DNN acoustic model of a DNN-HMM hybrid: ``python -m asr.train depth=8`` (Hydra app, conf/).

Examples::

    python -m asr.train depth=8                       # exp/synth/dnn/mlp_d8_w512/
    python -m asr.train -m depth=1,2,4,8,12           # the depth sweep, one run dir each
    python -m asr.train model=zeiler2013 depth=8 corpus=an4
    python -m asr.train depth=8 trainer.max_steps=500 # stop early; the same command without it continues

The run directory ``exp/<corpus>/dnn/<name>/`` (``name`` defaults to ``<model>_d<depth>_w<width>``) holds
``checkpoints/``, ``tensorboard/``, ``train_log.json``, ``train.log``, Hydra's ``.hydra/`` and
``config.resolved.yaml``, and, once training is complete, the DNN model dir files (:mod:`asr.nnet.model`:
``model.json`` with ``"kind": "dnn"``, ``final.pt``, ``pdf_counts.txt``, copies of the GMM's
``topo.json``, ``tree.json``, ``transition_model.json``, ``phones.txt``).

Running a command again continues from the newest checkpoint (a finished run with its model files leaves
them, and the decodes made from them, as they are); ``trainer.restart=true`` deletes the run's checkpoints and
starts over. A checkpoint made with another configuration (other than epochs / max_steps / logging) is refused
with the differences listed.

Inputs: ``<corpus.data_dir>/<corpus.train>/fbank.h5`` and the GMM dir ``gmm_dir`` (default
``exp/<corpus>/tri1``) with its ``ali.h5``; :func:`ensure_gmm` makes them with the corpus recipe when they are
missing (``prepare=true``) or names the recipe stages that make them (``prepare=false``).

Once training is complete, :func:`evaluate_run` decodes the sets of ``decode.sets`` with the GMM's graph
(:mod:`asr.decode.evaluate`: the LM weight picked on dev, test at that weight; the GMM baseline decoded the same
way when its decodes are missing), exports the recognizer bundle ``<run dir>/bundle`` (:mod:`asr.bundle`) and
prints the GMM-vs-DNN table (:func:`asr.report.comparison_table`). Under torchrun only rank 0 does this.
"""

from __future__ import annotations

import os

# Threads of torch's OpenMP runtime sleep instead of spinning while they wait: on a shared machine
# (other jobs on the cores) spinning threads steal the cores the working thread needs, which measured
# 3x slower training at 2 threads under load; the cost when the machine is idle is negligible for
# layers this size. Must be set before torch loads; OMP_WAIT_POLICY=ACTIVE in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from asr.nnet.launcher import die_with_launcher, launched_by_torchrun  # noqa: E402 (light; before torch)

if launched_by_torchrun():  # a rank dies with its torchrun, also while it is still importing torch
    die_with_launcher()

import logging
import shutil
import subprocess
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from asr.atomic import atomic_write
from asr.errors import AsrError, ConfigError
from asr.hmm.tree import load_context_dependency
from asr.nnet.alignments import read_pdf_alignment
from asr.nnet.config import TrainConfig, parse_train_config
from asr.nnet.distributed import init_ddp
from asr.nnet.frame_data import load_training_data
from asr.nnet.mlp import Mlp
from asr.nnet.model import MODEL_JSON, resolve_device, write_dnn_model_dir
from asr.nnet.optimizer import build_optimizer
from asr.nnet.schedule import InverseTimeSchedule
from asr.nnet.trainer import Trainer, TrainerOptions

logger = logging.getLogger("asr.train")

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GMM_FILES = ("model.json", "tree.json", "transition_model.json", "topo.json", "phones.txt", "ali.h5")


def _recipe_hint(tc: TrainConfig, stages: str) -> str:
    if not tc.corpus.recipe:
        return ""
    return f"; make it with: bash {tc.corpus.recipe} {stages}".rstrip()


def train_archive_path(tc: TrainConfig, subset: str | None = None) -> Path:
    """``<data_dir>/<subset or train>/<feature_type>.h5``."""
    return Path(tc.corpus.data_dir) / (subset or tc.corpus.train) / f"{tc.data.feature_type}.h5"


def run_recipe_stages(tc: TrainConfig, stages: str, why: str) -> None:
    """Run ``bash <corpus.recipe> <stages>`` (the recipe caches what it makes under data/ and exp/); ``stages``
    may hold several ranges separated by ``;``, run one after the other. With ``skip_bad`` the recipe gets
    ``--skip-bad true``.

    Raises:
        ConfigError: the corpus has no recipe or no stages configured, or the recipe fails.
    """
    if not tc.corpus.recipe or not stages.strip():
        raise ConfigError(f"{why}, and corpus {tc.corpus.name!r} names no recipe stages that make it")
    exp = str(Path(tc.gmm_dir).parent)
    for part in stages.split(";"):  # "--stage 3 --stop-stage 6; --stage 9 --stop-stage 12": one run each
        cmd = ["bash", tc.corpus.recipe, *part.split(), "--data", tc.corpus.data_dir, "--exp", exp]
        if tc.skip_bad:  # leave out unreadable audio (listed and counted) instead of stopping
            cmd += ["--skip-bad", "true"]
        logger.info("%s: running %s", why, " ".join(cmd))
        if subprocess.run(cmd, check=False).returncode != 0:
            raise ConfigError(f"{why}; the recipe command failed: {' '.join(cmd)} (its log is above)")


def _missing_gmm_files(gmm_dir: Path) -> list[str]:
    return [name for name in GMM_FILES if not (gmm_dir / name).is_file()]


def ensure_gmm(cfg: DictConfig | TrainConfig) -> Path:
    """Make sure what DNN training needs exists: training features and the GMM dir with its alignments.

    With ``prepare=true`` (default) the corpus recipe's feature stages and GMM stages are run when their
    outputs are missing (each with a log line; recipes skip what is already complete); with
    ``prepare=false`` a missing input is an error naming the command that makes it.

    Returns:
        The GMM model dir.

    Raises:
        ConfigError: naming the missing file and the recipe command that makes it.
    """
    tc = cfg if isinstance(cfg, TrainConfig) else parse_train_config(cfg)
    feats = train_archive_path(tc)
    if not feats.is_file() and tc.prepare:
        run_recipe_stages(tc, tc.corpus.feature_stages, f"training features {feats} are missing")
    gmm_dir = Path(tc.gmm_dir)
    if _missing_gmm_files(gmm_dir) and tc.prepare and feats.is_file():
        run_recipe_stages(tc, tc.corpus.gmm_stages, f"GMM dir {gmm_dir} is incomplete")
    if not feats.is_file():
        raise ConfigError(
            f"training features {feats} not found{_recipe_hint(tc, tc.corpus.feature_stages)} (or set corpus.data_dir)"
        )
    missing = _missing_gmm_files(gmm_dir)
    if missing:
        what = "alignments" if missing == ["ali.h5"] else "GMM model dir"
        raise ConfigError(
            f"the DNN trains on the senone alignments of a GMM; the {what} {gmm_dir} lacks {', '.join(missing)}"
            f"{_recipe_hint(tc, tc.corpus.gmm_stages)} (or set gmm_dir=<a GMM model dir with ali.h5>)"
        )
    return gmm_dir


def _heldout_inputs(tc: TrainConfig, gmm_dir: Path):
    """(dev archive, dev alignment) per ``data.heldout``, or (None, None) to hold out training utterances."""
    mode = tc.data.heldout
    if mode in ("fraction", "none"):
        return None, None
    dev = tc.corpus.dev
    ali = gmm_dir / f"ali_{dev}.h5" if dev else None
    if tc.data.heldout_alignments:
        ali = Path(tc.data.heldout_alignments)
    feats = train_archive_path(tc, dev) if dev else None
    if ali is not None and ali.is_file() and feats is not None and feats.is_file():
        return feats, read_pdf_alignment(ali)
    if mode == "dev":
        raise ConfigError(
            f"data.heldout=dev needs the dev set's features ({feats}) and alignments ({ali}); use "
            "data.heldout=auto to hold out a fraction of the training data instead"
        )
    logger.info(
        "no dev alignments (%s): holding out %.0f%% of the training utterances", ali, 100 * tc.data.heldout_fraction
    )
    return None, None


def clear_run(run_dir: Path) -> None:
    """Delete a run's training state and model files (checkpoints, TensorBoard, model dir files)."""
    for sub in ("checkpoints", "tensorboard"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    for name in (MODEL_JSON, "final.pt", "pdf_counts.txt", "train_log.json"):
        (run_dir / name).unlink(missing_ok=True)


def run_training(cfg: DictConfig, run_dir: str | os.PathLike) -> Path:
    """Train (or continue training) the DNN described by ``cfg`` in ``run_dir``; returns ``run_dir``.

    The model dir files are written when training is complete (all epochs, or stopped early by lr
    halving); a run cut short by ``trainer.max_steps`` leaves only checkpoints.
    """
    tc = parse_train_config(cfg)
    run_dir = Path(run_dir)
    ddp = init_ddp(tc) if tc.trainer.kind == "ddp" else None  # torchrun ranks: process group, device, threads
    if ddp is None:
        torch.set_num_threads(tc.trainer.num_threads or len(os.sched_getaffinity(0)))
    device = ddp.device if ddp is not None else resolve_device(tc.trainer.device)
    if ddp is None or ddp.is_main:  # only rank 0 writes; the other ranks wait for it (barrier below)
        run_dir.mkdir(parents=True, exist_ok=True)
        gmm_dir = ensure_gmm(tc)
        if tc.trainer.restart:
            logger.info("trainer.restart=true: deleting the checkpoints and model files of %s", run_dir)
            clear_run(run_dir)
        with atomic_write(run_dir / "config.resolved.yaml") as f:
            f.write(OmegaConf.to_yaml(cfg, resolve=True) if isinstance(cfg, DictConfig) else str(cfg))
    if ddp is not None:
        ddp.barrier()
        gmm_dir = ensure_gmm(tc)  # made by rank 0 (on another machine without a shared disk: made here)

    alignment = read_pdf_alignment(gmm_dir / "ali.h5")
    num_pdfs = load_context_dependency(gmm_dir / "tree.json").num_pdfs
    heldout_archive, heldout_alignment = _heldout_inputs(tc, gmm_dir)
    data = load_training_data(
        train_archive_path(tc),
        alignment,
        num_pdfs,
        batch_size=tc.optim.batch_size,
        seed=tc.seed,
        left=tc.data.left_context,
        right=tc.data.right_context,
        heldout_archive=heldout_archive,
        heldout_alignment=heldout_alignment,
        heldout_fraction=tc.data.heldout_fraction if tc.data.heldout != "none" else 0.0,
        ram_budget_bytes=int(tc.data.ram_budget_gb * 2**30),
        chunk_frames=tc.data.chunk_frames,
        device=device,
    )
    torch.manual_seed(tc.seed)
    context = tc.data.left_context + 1 + tc.data.right_context
    mlp = Mlp(data.feat_dim * context, num_pdfs, tc.model.depth, tc.model.width, tc.model.dropout)
    if tc.model.input_norm:
        mlp.set_input_normalization(data.feat_mean, data.feat_std)
    mlp.to(device)
    logger.info(
        "model: %d hidden layers x %d ReLU units, %d inputs, %d senones, %.2fM parameters; device %s, %d threads",
        tc.model.depth, tc.model.width, mlp.input_dim, num_pdfs, mlp.num_params() / 1e6, device,
        torch.get_num_threads(),
    )  # fmt: skip
    optimizer = build_optimizer(
        mlp, tc.optim.kind, tc.optim.lr, tc.optim.momentum, tc.optim.nesterov, tc.optim.weight_decay
    )
    schedule = InverseTimeSchedule(tc.optim.lr, tc.optim.decay_steps)
    options = TrainerOptions(
        epochs=tc.trainer.epochs,
        max_steps=tc.trainer.max_steps,
        checkpoint_every=tc.trainer.checkpoint_every,
        keep_checkpoints=tc.trainer.keep_checkpoints,
        log_every=tc.trainer.log_every,
        progress=tc.trainer.progress,
        tensorboard=tc.trainer.tensorboard,
        lr_halving=tc.trainer.lr_halving,
        halving_threshold=tc.trainer.halving_threshold,
        min_lr_scale=tc.trainer.min_lr_scale,
    )
    make_trainer = Trainer if ddp is None else ddp.make_trainer
    if tc.trainer.kind == "async":  # Downpour SGD on Ray (asr.nnet.downpour), with the Trainer's interface
        from asr.nnet.downpour import downpour_trainer_factory

        make_trainer = downpour_trainer_factory(tc, data, train_archive_path(tc), gmm_dir / "ali.h5", num_pdfs)
    trainer = make_trainer(
        mlp, optimizer, schedule, data.loader, data.heldout, options, run_dir, tc.seed, tc.fingerprint()
    )
    trainer.resume()
    if trainer.done:
        logger.info("training of %s is complete (%d epochs, step %d)", run_dir, len(trainer.history), trainer.step)
        if (run_dir / MODEL_JSON).is_file() and ddp is None:
            trainer.close()  # the model files are there: leave them (and the decodes made from them) as they are
            return run_dir
    start = time.perf_counter()
    try:
        trainer.fit()
    finally:
        trainer.close()
        if ddp is not None:
            ddp.close()
    if not trainer.done:
        logger.info(
            "stopped at step %d (epoch %d of %d); run the same command again to continue",
            trainer.step, trainer.state["epoch"] + 1, tc.trainer.epochs,
        )  # fmt: skip
        return run_dir
    if ddp is not None and not ddp.is_main:
        return run_dir
    last = trainer.history[-1] if trainer.history else {}
    info = {
        "name": tc.name,
        "corpus": tc.corpus.name,
        "train_data": str(Path(tc.corpus.data_dir) / tc.corpus.train),
        "alignments": str(gmm_dir / "ali.h5"),
        "heldout": data.heldout_source,
        "lang": tc.corpus.lang,
        "epochs": len(trainer.history),
        "steps": trainer.step,
        "batch_size": tc.optim.batch_size,
        "train_frames": data.loader.num_frames,
        "train_seconds": trainer.state["train_seconds"],
        "frames_per_second": trainer.state["frames_seen"] / max(trainer.state["train_seconds"], 1e-9),
        "heldout_loss": last.get("heldout_loss"),
        "heldout_frame_accuracy": last.get("heldout_frame_accuracy"),
        "config": str(run_dir / "config.resolved.yaml"),
    }
    if tc.trainer.kind == "async":  # updates/s, frames/s, staleness histogram, replica restarts
        info["async"] = trainer.metrics()
    write_dnn_model_dir(
        run_dir, mlp, data.pdf_counts, gmm_dir, info, tc.data.left_context, tc.data.right_context,
        data.feature_type, tc.priors.add, tc.priors.floor,
    )  # fmt: skip
    logger.info("DNN model dir written: %s (%.0f s this run)", run_dir, time.perf_counter() - start)
    return run_dir


def evaluate_run(cfg: DictConfig, run_dir: str | os.PathLike) -> str | None:
    """Decode the trained DNN in ``run_dir`` and its GMM baseline (``decode`` config group), export the
    recognizer bundle ``<run_dir>/bundle`` (:mod:`asr.bundle`, unless ``decode.bundle=false``) and return the
    GMM-vs-DNN table (:func:`asr.report.comparison_table`); None when decoding is disabled or training is not
    complete (no ``model.json`` yet).
    """
    from asr.decode.evaluate import evaluate_against_gmm, parse_evaluation_options

    tc = parse_train_config(cfg)
    section = OmegaConf.to_container(cfg.get("decode") or {}, resolve=True)
    run_dir = Path(run_dir)
    if not section.get("enabled", True) or not (run_dir / MODEL_JSON).is_file():
        return None
    options = parse_evaluation_options(section, (tc.corpus.dev, tc.corpus.test))
    graph = section.get("graph") or str(Path(tc.gmm_dir) / tc.corpus.graph)
    logger.info("decoding %s with the GMM's graph %s: sets %s", run_dir, graph, ", ".join(options.sets))
    gmm, dnn = evaluate_against_gmm(
        run_dir, tc.gmm_dir, graph, tc.corpus.lang_test, tc.corpus.data_dir, options, corpus=tc.corpus.name
    )
    if not dnn:
        logger.warning("none of the sets %s exists under %s: nothing decoded", options.sets, tc.corpus.data_dir)
        return None
    if section.get("bundle", True):
        from asr.bundle import export_bundle

        bundle = export_bundle(run_dir, graph, run_dir / "bundle", lang_dir=tc.corpus.lang_test, force=True)
        logger.info("recognizer bundle: %s (python -m asr.transcribe %s audio.wav)", bundle, bundle)
    from asr.report import comparison_table

    return comparison_table(tc.gmm_dir, run_dir, [s for s in options.sets if s in dnn])


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: train in Hydra's run (or sweep) directory, then decode and print the GMM-vs-DNN table."""
    from hydra.core.hydra_config import HydraConfig

    try:
        run_dir = run_training(cfg, HydraConfig.get().runtime.output_dir)
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 decodes
            table = evaluate_run(cfg, run_dir)
            if table:
                print(table, flush=True)
    except AsrError as err:  # bad input or configuration: a clear message, no traceback
        logger.error("%s", err)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
