"""Random-weight Stable Diffusion 1.5 and GLIGEN files, for running layout_to_sd on a real ComfyUI server.

The models are built with diffusers at SD 1.5's real architecture (ComfyUI
recognises a checkpoint by its shapes, so nothing smaller will do) and written
in the single-file layout ComfyUI's Load Checkpoint and GLIGEN Loader read:
the UNet under ``model.diffusion_model.`` with the original (LDM) names, the
CLIP text encoder under ``cond_stage_model.transformer.``, the VAE under
``first_stage_model.`` (ComfyUI converts diffusers VAE names itself), and the
GLIGEN gated attention and box projection under the LDM block names.

The UNet's LDM names come from ComfyUI's own table (``comfy.utils
.unet_to_diffusers``), so the checkout under test decides what it reads.
Needs ``diffusers`` (``pip install -e ".[server]"``) and ComfyUI importable.
"""

from __future__ import annotations

from pathlib import Path

import torch


def _ldm_names(unet_state: dict) -> dict[str, str]:
    """diffusers UNet name -> LDM name, from ComfyUI's own conversion table."""
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # as the server runs; importing its model code probes the device
    import comfy.model_detection
    import comfy.utils

    config = comfy.model_detection.unet_config_from_diffusers_unet(unet_state)
    return dict(comfy.utils.unet_to_diffusers(config))


def write_sd15(checkpoint: str | Path, gligen: str | Path, seed: int = 0) -> None:
    """An SD 1.5 checkpoint and a GLIGEN file (text boxes) of random fp16 weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(cross_attention_dim=768, attention_type="gated")  # SD 1.5 + GLIGEN fusers
    state = {k: v.half().contiguous() for k, v in unet.state_dict().items()}
    names = _ldm_names({k: v for k, v in state.items() if ".fuser." not in k and not k.startswith("position_net")})
    tensors, fusers = {}, {}
    for name, tensor in state.items():
        if name.startswith("position_net."):
            fusers[name] = tensor
        elif ".fuser." in name:  # the gated attention lives in the GLIGEN file, under the block's LDM name
            block, rest = name.split(".fuser.")
            anchor = names[f"{block}.attn1.to_q.weight"].removesuffix("attn1.to_q.weight")
            if rest.startswith("alpha_"):  # trained gates are open; at their initial 0 the boxes do nothing
                tensor = torch.ones_like(tensor)
            fusers[f"{anchor}fuser.{rest}"] = tensor
        else:
            tensors[f"model.diffusion_model.{names[name]}"] = tensor
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        hidden_act="quick_gelu"))
    for name, tensor in clip.state_dict().items():
        tensors[f"cond_stage_model.transformer.{name}"] = tensor.half().contiguous()
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    for name, tensor in vae.state_dict().items():
        tensors[f"first_stage_model.{name}"] = tensor.half().contiguous()
    checkpoint, gligen = Path(checkpoint), Path(gligen)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    gligen.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(checkpoint))
    save_file(fusers, str(gligen))
