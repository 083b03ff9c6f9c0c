"""ChatGLM-6B (v1) as a transformers 5 model: ``ChatGLMv1ForCausalLM`` (``transformer`` + tied ``lm_head``).

Exact reimplementation of the official ``modeling_chatglm.py`` (THUDM/chatglm-6b): masks and 2D positions built
from ``<sop>``/``[gMASK]``/``[MASK]`` when not passed, the official loss, official P-Tuning v2, and ``generate``
extending masks/positions step by step as the official ``_update_model_kwargs_for_generation`` does. Attention is
SDPA unless ``config._attn_implementation == "eager"`` (both compute the official result, see ``layers.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.utils import logging

from glmtune.model.chatglm_v1.configuration import ChatGLMv1Config
from glmtune.model.chatglm_v1.layers import GLMBlock, V1PrefixEncoder
from glmtune.model.chatglm_v1.positions import OfficialInputsMixin, first_index

logger = logging.get_logger(__name__)


class ChatGLMv1PreTrainedModel(OfficialInputsMixin, PreTrainedModel):
    config_class = ChatGLMv1Config
    config: ChatGLMv1Config
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GLMBlock"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class ChatGLMv1Model(ChatGLMv1PreTrainedModel):
    """The official ``ChatGLMModel`` (the ``transformer`` of the checkpoint)."""

    def __init__(self, config: ChatGLMv1Config) -> None:
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([GLMBlock(config, i) for i in range(config.num_layers)])
        self.final_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.gradient_checkpointing = False
        self.prefix_encoder: V1PrefixEncoder | None = None
        self.prefix_dropout = nn.Dropout(0.1)
        if config.pre_seq_len is not None:
            for param in self.parameters():
                param.requires_grad = False
            self.prefix_encoder = V1PrefixEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.word_embeddings = value

    def get_prompt(self, batch_size: int, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Official ``get_prompt``: per layer (key, value) [B, heads, pre_seq_len, head_dim]; dropout 0.1 (train)."""
        enc = self.prefix_encoder
        cfg = self.config
        ids = torch.arange(enc.pre_seq_len, device=enc.embedding.weight.device).unsqueeze(0).expand(batch_size, -1)
        kv = enc(ids).to(dtype)
        kv = kv.view(batch_size, enc.pre_seq_len, cfg.num_layers * 2, cfg.num_attention_heads, cfg.head_dim)
        kv = self.prefix_dropout(kv).permute(2, 0, 3, 1, 4)
        return [(kv[2 * i], kv[2 * i + 1]) for i in range(cfg.num_layers)]

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPast | tuple:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        bsz, seq = inputs_embeds.shape[:2]
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False
        if isinstance(past_key_values, tuple):
            raise ValueError("past_key_values must be a transformers Cache (e.g. DynamicCache), not a tuple")
        if attention_mask is not None and attention_mask.dtype != torch.bool and attention_mask.dim() == 2:
            # an HF-style [B, T] padding mask (e.g. from a generic collator): the official generate drops non-bool
            # masks and builds them from the ids; with right padding (the official training layout) that is exact
            logger.warning_once("ChatGLM-6B: a [B, T] attention_mask is ignored; masks are built from the ids")
            attention_mask = None
        if position_ids is not None and position_ids.dim() == 2 and self.config.position_encoding_2d:
            if past_key_values is not None and past_key_values.get_seq_length() > 0:
                raise ValueError("position_ids must be [B, 2, T] (position, block position) for ChatGLM-6B")
            logger.warning_once("ChatGLM-6B: [B, T] position_ids are ignored; its 2D positions are built from the ids")
            position_ids = None
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        if past_len == 0 and (attention_mask is None or position_ids is None):
            if input_ids is None:
                raise ValueError("with inputs_embeds, pass attention_mask and position_ids (they are built from ids)")
            if attention_mask is None:
                attention_mask = self.get_masks(input_ids)
            if position_ids is None:
                position_ids = self.get_position_ids(input_ids)
        if position_ids is None:
            raise ValueError("position_ids are required when continuing from a cache (generate builds them)")
        attention_mask = self._checked_mask(attention_mask, bsz)
        self._check_positions(position_ids, bsz, seq)

        prefix = None
        if self.prefix_encoder is not None:
            prefix = self.get_prompt(bsz, inputs_embeds.dtype)
            if attention_mask is not None:
                open_cols = attention_mask.new_zeros(bsz, 1, seq, self.prefix_encoder.pre_seq_len)
                attention_mask = torch.cat([open_cols, attention_mask.expand(bsz, -1, seq, -1)], dim=3)

        hidden = inputs_embeds
        all_hidden: tuple = ()
        all_attn: tuple = ()
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden += (hidden,)
            pk, pv = prefix[i] if prefix is not None else (None, None)
            hidden, probs = layer(
                hidden,
                position_ids,
                attention_mask,
                pk,
                pv,
                past_key_values=past_key_values,
                output_attentions=bool(output_attentions),
            )
            if output_attentions:
                all_attn += (probs,)
        hidden = self.final_layernorm(hidden)
        if output_hidden_states:
            all_hidden += (hidden,)
        out = BaseModelOutputWithPast(
            last_hidden_state=hidden,
            past_key_values=past_key_values if use_cache else None,
            hidden_states=all_hidden if output_hidden_states else None,
            attentions=all_attn if output_attentions else None,
        )
        return out if return_dict is not False else out.to_tuple()

    @staticmethod
    def _checked_mask(mask: torch.Tensor | None, bsz: int) -> torch.Tensor | None:
        if mask is None:
            return None
        if mask.dtype != torch.bool:
            raise ValueError(
                f"attention_mask has dtype {mask.dtype}: ChatGLM-6B takes the bool [B, 1, T, T] mask its tokenizer "
                "builds (True = masked), or none to build it from <sop>"
            )
        if mask.dim() == 3:
            mask = mask.unsqueeze(1)
        if mask.dim() != 4 or mask.shape[0] not in (1, bsz):
            raise ValueError(f"attention_mask has shape {tuple(mask.shape)}; expected [B, 1, T, T] bool")
        return mask

    def _check_positions(self, position_ids: torch.Tensor, bsz: int, seq: int) -> None:
        want = (bsz, 2, seq) if self.config.position_encoding_2d else (bsz, seq)
        if tuple(position_ids.shape) != want:
            raise ValueError(
                f"position_ids has shape {tuple(position_ids.shape)}; ChatGLM-6B expects {list(want)} "
                "(positions and block positions, as its tokenizer builds them)"
            )


class ChatGLMv1ForCausalLM(ChatGLMv1PreTrainedModel, GenerationMixin):
    """The official ``ChatGLMForConditionalGeneration`` under transformers 5 (``generate`` included)."""

    _tied_weights_keys = {"lm_head.weight": "transformer.word_embeddings.weight"}

    def __init__(self, config: ChatGLMv1Config) -> None:
        super().__init__(config)
        config.check_sizes()
        self.transformer = ChatGLMv1Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.transformer.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    # ------------------------------------------------------------------ P-Tuning v2
    @property
    def prefix_encoder(self) -> V1PrefixEncoder:
        """The P-Tuning v2 prefix encoder (``transformer.prefix_encoder``); AttributeError when there is none."""
        encoder = self.transformer.prefix_encoder
        if encoder is None:
            raise AttributeError("this ChatGLM-6B model has no P-Tuning prefix (see enable_ptuning)")
        return encoder

    def enable_ptuning(self, pre_seq_len: int, prefix_projection: bool = False) -> V1PrefixEncoder:
        """Add the official prefix encoder (fp32, trainable) and freeze everything else, in place."""
        self.config.pre_seq_len = int(pre_seq_len)
        self.config.prefix_projection = bool(prefix_projection)
        for param in self.parameters():
            param.requires_grad = False
        device = self.transformer.word_embeddings.weight.device
        self.transformer.prefix_encoder = V1PrefixEncoder(self.config).to(device=device, dtype=torch.float32)
        return self.transformer.prefix_encoder

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
    ) -> CausalLMOutputWithPast | tuple:
        out = self.transformer(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden = out.last_hidden_state
        if logits_to_keep and labels is None:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:  # official: fp32 logits, shift by one, mean CE over labels != -100
            shift_logits = logits.float()[..., :-1, :].contiguous()
            shift_labels = labels[..., 1:].contiguous().to(shift_logits.device)
            loss = nn.functional.cross_entropy(
                shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1), ignore_index=-100
            ).to(hidden.dtype)
        result = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
        return result if return_dict is not False else result.to_tuple()

    # ------------------------------------------------------------------ generation (official step logic)
    def generate(self, inputs: torch.Tensor | None = None, generation_config: Any = None, **kwargs: Any) -> Any:
        """transformers ``generate``; a bool ``attention_mask`` / 2D ``position_ids`` are extended each step
        as the official code does; a non-bool mask is dropped (with a warning) and rebuilt from the ids."""
        mask = kwargs.pop("attention_mask", None)
        if mask is not None and mask.dtype != torch.bool:
            logger.warning_once("ChatGLM-6B: a non-bool attention_mask is not the v1 mask; rebuilt from the ids")
            mask = None
        if kwargs.get("inputs_embeds") is not None:
            raise ValueError("ChatGLM-6B generates from input_ids (its masks and positions are built from them)")
        kwargs["v1_attention_mask"] = mask
        kwargs["v1_position_ids"] = kwargs.pop("position_ids", None)
        return super().generate(inputs, generation_config, **kwargs)

    def _prepare_position_ids_for_generation(self, inputs_tensor: torch.Tensor, model_kwargs: dict) -> None:
        return None  # built by prepare_inputs_for_generation, the official way

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        past_key_values: Cache | None = None,
        v1_attention_mask: torch.Tensor | None = None,
        v1_position_ids: torch.Tensor | None = None,
        use_cache: bool | None = None,
        next_sequence_length: int | None = None,
        is_first_iteration: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        rows = input_ids.tolist()
        mask_positions = self._mask_positions(rows)  # the official code checks every step
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        if past_len > 0:
            ids = input_ids[:, past_len:]
            new = ids.shape[1]
            mask = v1_attention_mask[:, :, -new:] if v1_attention_mask is not None else None
            if v1_position_ids is not None:
                positions = v1_position_ids[..., -new:]
            else:
                seq = input_ids.shape[1]
                ctx = [first_index(r, self.config.bos_token_id, "<sop>", i) for i, r in enumerate(rows)]
                pairs = [[m, seq - c] for m, c in zip(mask_positions, ctx, strict=True)]
                positions = torch.tensor(
                    pairs if self.config.position_encoding_2d else mask_positions,
                    dtype=torch.long,
                    device=input_ids.device,
                ).unsqueeze(-1)
        else:
            ids = input_ids
            mask = v1_attention_mask if v1_attention_mask is not None else self.get_masks(input_ids)
            positions = v1_position_ids
            if positions is None:
                positions = self.get_position_ids(input_ids, mask_positions)
        inputs = {
            "input_ids": ids,
            "past_key_values": past_key_values,
            "attention_mask": mask,
            "position_ids": positions,
            "use_cache": use_cache,
        }
        for key in ("output_attentions", "output_hidden_states", "logits_to_keep"):
            if key in kwargs:
                inputs[key] = kwargs[key]
        return inputs

    def _update_model_kwargs_for_generation(
        self, outputs: Any, model_kwargs: dict[str, Any], is_encoder_decoder: bool = False, num_new_tokens: int = 1
    ) -> dict[str, Any]:
        model_kwargs["past_key_values"] = getattr(outputs, "past_key_values", None)
        for _ in range(num_new_tokens):
            mask = model_kwargs.get("v1_attention_mask")
            if mask is not None:  # new column masked for old rows; new row = last row with itself visible
                mask = torch.cat([mask, mask.new_ones((*mask.shape[:3], 1))], dim=3)
                row = mask[:, :, -1:].clone()
                row[..., -1] = False
                model_kwargs["v1_attention_mask"] = torch.cat([mask, row], dim=2)
            positions = model_kwargs.get("v1_position_ids")
            if positions is not None:  # same position (the mask's), next block position
                step = positions[..., -1:].clone()
                if step.dim() == 3:
                    step[:, 1, :] += 1
                model_kwargs["v1_position_ids"] = torch.cat([positions, step], dim=-1)
        return model_kwargs


__all__ = ["ChatGLMv1ForCausalLM", "ChatGLMv1Model", "ChatGLMv1PreTrainedModel"]
