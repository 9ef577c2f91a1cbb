"""``python -m benchmarks.inference.profile``: where one configuration spends its time (torch profiler).

Prints the operators with the most self CPU time for the plain backbone and for the chosen
configuration of our library, so an overhead in the benchmark can be traced to its source.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from .__main__ import make_inputs, minilm_folder, quiet_libraries, random_backbone
from .setups import SETUPS, plain_backbone


def _profile(run, rounds: int, rows: int) -> str:
    with torch.inference_mode():
        run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(rounds):
                run()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference.profile", description=__doc__)
    parser.add_argument("--config", default="seq_bn", choices=[s.name for s in SETUPS])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--random-from-config", default=None, metavar="CONFIG_JSON")
    args = parser.parse_args(argv)
    quiet_libraries()
    folder = random_backbone(args.random_from_config) if args.random_from_config else minilm_folder()
    from transformers import AutoConfig

    import adapters_client

    inputs = make_inputs(args.batch, args.seq_len, AutoConfig.from_pretrained(folder).vocab_size)
    setup = next(s for s in SETUPS if s.name == args.config)
    print("== backbone ==\n" + _profile(plain_backbone(folder, inputs), args.rounds, args.rows))
    print(f"== ours: {setup.name} ==\n" + _profile(setup.build(adapters_client, folder, inputs), args.rounds,
                                                    args.rows))


if __name__ == "__main__":
    main()
