"""What makes a training step the model's own work and little else, where the trainer's defaults cost more.

Measured on the embedded SmolLM2-135M, a 2-core CPU, batches of 4 shipped-sample rows (~2,400 tokens, ~350
of them in answers), seconds per forward and backward (`bench/train_embedded.py` prints the same):

- padded batches: about a third of the positions are padding, and the model computes over them;
- padding-free (the rows of a batch as one sequence, position ids restarting at each row), with sdpa:
  attention runs over the whole packed sequence under a block-diagonal mask, so it costs (sum of the rows)^2
  where the rows need the sum of their squares: 26 s a step against 16 s with attention row by row;
- TRL's loss off CUDA projects every position through the LM head (49,152 logits each, then their entropy
  and top-1 for its logs), where only the answer tokens carry loss: 21.5 s against 13.7 s;
- LoRA dropout draws its masks with torch's CPU Bernoulli sampler, 16% of a step.

So, where it is safe (checked at start-up, `use_padding_free`), a batch is padding-free, attention runs row by
row (`ROWS`, registered through transformers' `AttentionInterface`), and the loss projects only the
positions whose next token is in an answer (`CompletionLossTrainer`, through `logits_to_keep`); on a CPU
the dropout masks are drawn from uniform numbers (`MaskDropout`, the same distribution). The rows,
their truncation, the completion-only labels, the loss's normalisation and the hyperparameters are TRL's,
unchanged. On CUDA, TRL's own LM head already scores only those positions, and flash attention takes
packed rows natively (see the README's GPU plan).

The preference step's DPO passes are cut the same way (`SharedPromptDPOTrainer`): a pair's prompt is read
once, and only its answers' positions go through the LM head.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from trl import DPOTrainer, SFTTrainer

ROWS = "slm_swap_rows"  # the attention implementation that keeps packed rows apart by computing them apart


def rows_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """sdpa; but a padding-free sequence of packed rows is computed row by row, each causal over itself
    alone. The rows are read from the collator's `cu_seq_lens_q` (cumulative row lengths) or else from
    where the position ids restart at 0. Anything else (a padded batch, one row) is sdpa's, mask and all."""
    bounds = _row_bounds(query.shape[2], kwargs.get("cu_seq_lens_q"), kwargs.get("position_ids"))
    if query.shape[0] != 1 or len(bounds) <= 2:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    rest = {k: v for k, v in kwargs.items() if k != "is_causal"}
    outputs = [
        sdpa_attention_forward(
            module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None, is_causal=True, **rest
        )[0]
        for a, b in itertools.pairwise(bounds)
    ]
    return torch.cat(outputs, dim=1), None  # (batch, length, heads, head_dim), as sdpa's


def _row_bounds(length: int, cumulative: torch.Tensor | None, position_ids: torch.Tensor | None) -> list[int]:
    """Where the packed rows of a sequence start, and its end; [0, length] when it is not packed."""
    if cumulative is not None:
        starts = [int(x) for x in cumulative.tolist()[:-1]]
    elif position_ids is not None and position_ids.shape[0] == 1:
        starts = [int(x) for x in (position_ids[0] == 0).nonzero().flatten().tolist()]
    else:
        starts = []
    return [*sorted({0, *starts}), length]


AttentionInterface.register(ROWS, rows_attention)
# Its masks are sdpa's (a padded batch keeps its padding mask); a packed sequence's is not read.
AttentionMaskInterface.register(ROWS, sdpa_mask)


def use_padding_free(trainer: Any) -> bool:
    """Switches the trainer to padding-free batches with row-by-row attention, when its model keeps packed
    rows apart that way.

    The collation is TRL's own with `padding_free=True`. Whether the model really keeps the rows apart is
    checked here, on the first two training rows: their logits packed must equal their logits apart (with
    the model's own attention), else the batches stay padded and the attention as it was."""
    try:  # TRL's collator (a dataclass with a padding_free field); any other is left as it is
        packed_collator: Any = dataclasses.replace(trainer.data_collator, padding_free=True)
    except TypeError:
        return False
    rows = [trainer.train_dataset[i] for i in range(min(2, len(trainer.train_dataset)))]
    if len(rows) < 2:
        return False
    rows = [{"input_ids": r["input_ids"][:32], "labels": r["labels"][:32]} for r in rows]
    model = trainer.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    before = base.config._attn_implementation
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            apart = [model(input_ids=torch.tensor([r["input_ids"]], device=device)).logits[0] for r in rows]
            base.set_attn_implementation(ROWS)
            packed = {k: v.to(device) if torch.is_tensor(v) else v for k, v in packed_collator(rows).items()}
            logits = model(**{k: v for k, v in packed.items() if k != "labels"}).logits[0]
        same = torch.allclose(logits.float(), torch.cat(apart).float(), atol=1e-3, rtol=1e-3)
    except (TypeError, ValueError):  # a model whose forward takes no packed rows
        same = False
    finally:
        model.train(was_training)
    if same:
        trainer.data_collator = packed_collator
    else:
        base.set_attn_implementation(before)
    return bool(same)


class MaskDropout(torch.nn.Module):
    """Inverted dropout as torch's, drawn faster on a CPU: each element is kept with probability 1 - p and
    scaled by 1 / (1 - p). torch's CPU dropout draws its Bernoulli mask at ~9 ms per 1.4 M elements, where
    uniform numbers compared with p take ~4 ms; LoRA dropout runs 7 times per layer, on every forward."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).uniform_() >= self.p
        return torch.where(keep, x * (1 / (1 - self.p)), 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_mask_dropout(model: Any) -> int:
    """Puts `MaskDropout` in place of each LoRA layer's `torch.nn.Dropout` (PEFT's `lora_dropout`), with
    the same p. Returns how many were replaced."""
    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in list(dropouts.items()):
            if type(dropout) is torch.nn.Dropout and dropout.p > 0:
                dropouts[name] = MaskDropout(dropout.p)
                replaced += 1
    return replaced


class CompletionLossTrainer(SFTTrainer):
    """TRL's SFTTrainer, with a loss that sends only the positions whose next token carries loss through
    the LM head (`compact_loss`, set where TRL's own loss would project every position: off CUDA).

    The loss is TRL's: the summed negative log-likelihood of the answer tokens over `num_items_in_batch`
    (the answer tokens of the whole optimizer step), scaled the same way under DDP. TRL's per-step entropy
    and token accuracy are not logged on this path; the loss is."""

    compact_loss = False

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if not self.compact_loss:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = completion_loss(model, inputs, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # DDP averages the gradients across ranks
        return (loss, outputs) if return_outputs else loss


def completion_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> tuple[Any, Any]:
    """The causal LM loss over the answer tokens, with logits computed only where they are needed."""
    labels = inputs["labels"]
    targets = labels[:, 1:]
    answer = targets != -100
    keep = answer.any(dim=0).nonzero().flatten()  # positions whose next token is in an answer, in any row
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    outputs = model(**model_inputs, use_cache=False, logits_to_keep=keep)
    logits = outputs.logits.float()  # (batch, kept, vocab)
    summed = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), targets[:, keep], ignore_index=-100, reduction="sum"
    )
    count = answer.sum() if num_items_in_batch is None else num_items_in_batch
    loss = summed / torch.as_tensor(count, device=summed.device).clamp(min=1)
    return loss, outputs


class SharedPromptDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer, whose forward passes read each pair's prompt once.

    TRL runs a pair as two padded rows, prompt + chosen and prompt + rejected, through the policy and again
    through its reference, and sends every position through the LM head. A tool-calling prompt (the tools'
    schemas) is most of a pair: 569 tokens on average against 35 in the answer, on 128 BFCL rows. Here a pair
    is one sequence, prompt + chosen + rejected, the rejected answer's positions continuing the prompt's
    (position ids from the prompt's end) under a mask that hides the chosen answer from them, and only the
    positions whose next token is an answer's go through the LM head. Each answer's log-likelihood is the
    one TRL computes (`test_the_shared_prompt_pass_gives_trls_loss_and_gradients`), and so are the loss
    (DPO's sigmoid loss, the mean over the batch's pairs) and its gradients.

    Anything else TRL's configuration may ask (other losses, a separate reference model, precomputed
    reference log-probabilities) and any batch whose rows do not share their prompt go through TRL's own
    `compute_loss`. The logs are TRL's rewards and log-probabilities; its entropy, logits and token accuracy
    are not logged on this path."""

    shared_batches = 0  # batches computed with their prompts shared
    other_batches = 0  # batches left to TRL's own loss

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shared_logs: dict[str, list[float]] = {}

    def shares_prompts(self) -> bool:
        """Whether this trainer's configuration is the one the shared pass computes: DPO's sigmoid loss
        alone, on log-likelihood ratios to a "ref" PEFT adapter computed as it goes (TRL 1.16's names;
        another TRL's trainer keeps its own loss)."""
        return (
            list(getattr(self, "loss_types", [])) == ["sigmoid"]
            and getattr(self, "f_divergence_type", None) == "reverse_kl"
            and getattr(self, "ld_alpha", 0) is None
            and getattr(self, "precompute_ref_logps", True) is False
            and getattr(self, "aux_loss_enabled", True) is False
            and getattr(self, "ref_model", True) is None
            and "ref" in getattr(self.accelerator.unwrap_model(self.model), "peft_config", {})
        )

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        rows = None
        if not return_outputs and {"input_ids", "completion_mask"} <= inputs.keys() and self.shares_prompts():
            rows = shared_rows(inputs["input_ids"], inputs["completion_mask"])
        if rows is None:
            self.other_batches += 1
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        from trl.trainer.utils import use_adapter

        policy = pair_log_likelihoods(model, rows)
        with torch.no_grad(), use_adapter(self.accelerator.unwrap_model(self.model), adapter_name="ref"):
            reference = pair_log_likelihoods(model, rows)
        chosen_ratio = policy[:, 0] - reference[:, 0]
        rejected_ratio = policy[:, 1] - reference[:, 1]
        loss = -torch.nn.functional.logsigmoid(self.beta * (chosen_ratio - rejected_ratio)).mean()
        self.shared_batches += 1
        chosen_reward = self.beta * chosen_ratio.detach()
        rejected_reward = self.beta * rejected_ratio.detach()
        for key, value in {
            "rewards/chosen": chosen_reward.mean(),
            "rewards/rejected": rejected_reward.mean(),
            "rewards/accuracies": (chosen_reward > rejected_reward).float().mean(),
            "rewards/margins": (chosen_reward - rejected_reward).mean(),
            "logps/chosen": policy[:, 0].detach().mean(),
            "logps/rejected": policy[:, 1].detach().mean(),
        }.items():
            self._shared_logs.setdefault(key, []).append(float(value))
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training step's log: the metrics of the passes since the last one
            logs.update({key: sum(values) / len(values) for key, values in self._shared_logs.items()})
            self._shared_logs.clear()
        super().log(logs, start_time)


@dataclasses.dataclass(frozen=True)
class SharedRow:
    """A pair as one sequence: its prompt, then the chosen answer, then the rejected one."""

    input_ids: torch.Tensor  # (length,)
    position_ids: torch.Tensor  # (length,): the rejected answer's continue the prompt's
    # (length, length) bool, True where a position attends: causal, the rejected answer's positions not
    # seeing the chosen answer's
    mask: torch.Tensor
    scored: torch.Tensor  # the positions whose next token is an answer's: the chosen's, then the rejected's
    targets: torch.Tensor  # those next tokens
    chosen: int  # how many of them are the chosen answer's


def shared_rows(input_ids: torch.Tensor, completion_mask: torch.Tensor) -> list[SharedRow] | None:
    """TRL's collated pairs (chosen rows, then rejected rows, each prompt + answer, padded at the right) as
    one sequence a pair; None where a pair's rows do not share their prompt, or an answer is empty or not
    one run of tokens right after the prompt (TRL's loss then takes the batch)."""
    half = input_ids.shape[0] // 2
    rows = []
    for i in range(half):
        parts = []
        for row in (i, half + i):
            answer = completion_mask[row].nonzero().flatten()
            if answer.numel() == 0 or int(answer[-1] - answer[0]) + 1 != answer.numel():
                return None
            parts.append((int(answer[0]), input_ids[row, int(answer[0]) : int(answer[-1]) + 1]))
        (start, chosen), (rejected_start, rejected) = parts
        prompt = input_ids[i, :start]
        if rejected_start != start or not torch.equal(input_ids[half + i, :start], prompt) or start == 0:
            return None
        end = start + len(chosen)  # where the chosen answer ends and the rejected one begins
        length = end + len(rejected)
        mask = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
        mask[end:, start:end] = False
        positions = torch.arange(length, device=input_ids.device)
        position_ids = torch.cat([positions[:end], positions[start : start + len(rejected)]])
        # The chosen answer's tokens are predicted from the positions before each; the rejected answer's
        # first token from the prompt's last position, the rest from the rejected answer's own.
        scored = torch.cat([positions[start - 1 : end - 1], positions[start - 1 : start], positions[end:-1]])
        rows.append(SharedRow(torch.cat([prompt, chosen, rejected]), position_ids, mask, scored,
                              torch.cat([chosen, rejected]), len(chosen)))  # fmt: skip
    return rows


def pair_log_likelihoods(model: Any, rows: list[SharedRow]) -> torch.Tensor:
    """(pairs, 2): each pair's chosen and rejected answers' summed log-likelihoods under `model`."""
    out = []
    for row in rows:
        logits = model(
            input_ids=row.input_ids[None],
            position_ids=row.position_ids[None],
            attention_mask=row.mask[None, None],
            use_cache=False,
            logits_to_keep=row.scored,
        ).logits[0]
        logps = torch.log_softmax(logits.float(), dim=-1).gather(1, row.targets[:, None]).squeeze(1)
        out.append(torch.stack([logps[: row.chosen].sum(), logps[row.chosen :].sum()]))
    return torch.stack(out)
