"""Short explanations shown in each tab's collapsible "What am I looking at?" panel.

Markdown with LaTeX (``$...$`` inline, ``$$...$$`` display), in the lecture notation:
q_phi(z|x) encoder, p_theta(x|z) decoder, p(z) / p_lambda(z) prior, f_lambda / g_lambda the
flow and its inverse, z* a base-space point, q_agg the aggregated posterior, z_e / z_q / e_k
the VQ-VAE's encoder output, quantized vector and codebook entries.
"""

from __future__ import annotations

LATEX = [{"left": "$$", "right": "$$", "display": True},
         {"left": "$", "right": "$", "display": False}]

INTRO = """\
# Latent Lab
Explore what generative models with latent variables have learned about handwritten digits
(MNIST) and clothing (Fashion-MNIST): a **VAE** with the standard normal prior, the same VAE
with a learned **RealNVP flow prior**, and a **VQ-VAE** with a discrete 7×7 code grid and a
learned prior over codes. Pick a data set and models on each tab; every picture with randomness
has a **seed**, so the same settings redraw the same picture. Open *What am I looking at?* on
any tab for the formulas behind the screen.
"""

RECONSTRUCT = r"""
**The encoder** maps the image to a Gaussian over latents,
$q_\phi(z|x)=\mathcal N\big(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x)\big)$;
**the decoder** $p_\theta(x|z)$ gives every pixel a Bernoulli probability. The picture shown is the
decoder's mean at $z=\mu_\phi(x)$. The Bernoulli VAEs read a *binary* image (the choice
"input pixels" says how the grey image is made binary); the VQ-VAE reads the grey image.

**ELBO.** For each of the $k$ samples $z_i \sim q_\phi(z|x)$ take the log importance weight
$\log w_i = \log p_\theta(x|z_i) + \log p(z_i) - \log q_\phi(z_i|x)$. Then

$$\mathcal L(x) = \mathbb E_{q_\phi(z|x)}\big[\log p_\theta(x|z)\big] - \mathrm{KL}\big(q_\phi(z|x)\,\|\,p(z)\big) \approx \frac1k\sum_i \log w_i ,$$

the reconstruction term minus the KL term (both columns of the table, same samples).

**Importance-weighted bound.** Averaging the weights *inside* the log gives a tighter bound,

$$\log p(x) \;\ge\; \mathcal L_k(x) = \log \frac1k \sum_{i=1}^k w_i \;\ge\; \mathcal L(x),$$

which approaches $\log p(x)$ as $k$ grows. The gap $\mathcal L_k - \mathcal L$ shows how far the
Gaussian $q_\phi(z|x)$ is from the true posterior $p(z|x)$ for this input.

**Posterior plot.** Mean $\pm$ one standard deviation of $q_\phi(z|x)$ per dimension: a dimension
whose posterior sits at $0 \pm 1$ (the prior) carries no information about this input. For 2-D
models the ellipses (1σ, 2σ) are drawn over the *aggregated posterior* (the test set's posterior
means, coloured by class).

**VQ-VAE.** The encoder output $z_e(x)$ on a 7×7 grid is snapped cell by cell to the nearest
codebook vector, $z_q = e_{k^*}$ with $k^* = \arg\min_k \|z_e - e_k\|$; the grid of indices $k^*$
is the discrete latent. Its code length under the learned prior, $-\log_2 p_\lambda(c)$, can be
compared with the uniform prior's $49 \log_2 K$ bits.
"""

SAMPLE = r"""
**From the prior** (*ancestral sampling*): $z \sim p(z)$, then show the decoder's mean
$p_\theta(x|z)$. For $\mathcal N(0, I)$, $z = T\varepsilon$; for the flow prior,
$z = g_\lambda(T\varepsilon)$ with $\varepsilon \sim \mathcal N(0, I)$ in the base space and
$g_\lambda = f_\lambda^{-1}$. The temperature $T<1$ stays near the prior's mode (cleaner,
less varied), $T>1$ explores its tails.

**From the aggregated posterior** $q_{\text{agg}}(z) = \frac1n \sum_{i=1}^n q_\phi(z|x_i)$:
pick a random test image $x_i$, then $z \sim q_\phi(z|x_i)$ (standard deviation times $T$).
*ELBO surgery* shows that $q_{\text{agg}}$ is the prior that maximises the average ELBO, so
these samples show what the decoder can draw when $z$ lands where the encoder actually puts
data. Where prior samples look worse, the prior puts mass where $q_{\text{agg}}$ has none:
the "holes" a flow prior $p_\lambda(z)$ is trained to avoid.

**VQ-VAE.** The derivation uses a *uniform* prior over the $K$ codes of each of the 49 cells:
sampling it gives noise, because neighbouring cells do not agree. The *learned* prior
$p_\lambda(c) = \prod_i p_\lambda(c_i \mid c_{<i})$ (an autoregressive transformer over the
cells in raster order) draws codes that fit together.

**Labels** come from a small classifier trained on the real images; orange ones are
below 0.9 confidence (the sample is ambiguous).
"""

INTERPOLATE = r"""
Both inputs are encoded to their posterior means $\mu_A, \mu_B$ and the decoder is run along
a path between them:

* **linear**: $z_t = (1-t)\,\mu_A + t\,\mu_B$;
* **spherical** (slerp): along the great circle between the two directions, with the length
  blended linearly. In high dimensions most of $\mathcal N(0, I)$'s mass sits on a shell of
  radius $\approx\sqrt d$, and the straight line cuts through the low-norm middle.
* **flow base space** (flow-prior models): map the ends to $z^* = f_\lambda(\mu)$, interpolate
  $z^*_t$ there, and decode $z_t = g_\lambda(z^*_t)$; the path then follows the prior's shape.
* **VQ-VAE**: interpolate the continuous encoder output $z_e$ before quantization; every step
  is snapped to codes and decoded. The counts show how many of the 49 codes change per step:
  the image changes in jumps.

The chart shows the prior's log-density $\log p(z_t)$ along the path (for the VQ-VAE the
learned prior's $\log p_\lambda(c_t)$): a dip means the path crosses a region the prior thinks
unlikely, often where the decoded images look least like data.
"""

CODE_GRID = r"""
A VQ-VAE image is a 7×7 grid of code indices $c \in \{0,\dots,K-1\}^{7\times 7}$; the decoder
sees the grid of codebook vectors $z_q = (e_{c_{ij}})$. Edit the table and the picture is decoded
again at once; the coloured map shows the same grid (one colour per code).

* **Paint**: set the selected cells to one code (click cells on the map, or on a code in the
  atlas to choose it).
* **Regenerate**: redraw only the selected cells from the learned prior, given all the other
  cells, $c_{\text{sel}} \sim p_\lambda(c_{\text{sel}} \mid c_{\text{rest}})$ (ancestral pass,
  then two Gibbs sweeps that also look at the cells after the selection; each update weighs the
  32 codes most likely given the cells before it).
* **New grid**: a whole grid from the uniform prior (noise) or the learned prior.

The **atlas** shows each code decoded alone (a grid filled with that code) and how often the
encoder picks it on the test set; red counts mark *dead* codes that no test image uses.
Training used the reconstruction loss plus the codebook and commitment terms,
$\|\mathrm{sg}[z_e] - e\|^2 + \beta\,\|z_e - \mathrm{sg}[e]\|^2$, which pull codes and encoder
outputs towards each other.
"""

CODE_LEVELS = r"""
A **hierarchical VQ-VAE** (the lectures' VQ-VAE-2, at MNIST scale) has two code grids: a
**top** grid $c^{\text{top}} \in \{0,\dots,K_{\text{top}}-1\}^{2\times 2}$ for *global*
information and a **bottom** grid $c^{\text{bot}} \in \{0,\dots,K-1\}^{7\times 7}$ for *local*
information. The bottom encoder sees the decoded top, so the bottom codes carry what the top
leaves open; the decoder sees both. The learned prior factorises over the levels,
$$p_\lambda(c^{\text{top}}, c^{\text{bot}}) = p_\lambda(c^{\text{top}})\;
p_\lambda(c^{\text{bot}} \mid c^{\text{top}}),$$
one causal transformer over the 4 top cells followed by the 49 bottom cells.

* **Edit a top code**: the bottom grid is redrawn from $p_\lambda(c^{\text{bot}} \mid c^{\text{top}})$
  and the image changes as a whole (another digit, slant or width).
* **Edit a bottom code**: only that neighbourhood of the image changes.
* **Same top, other bottoms**: eight draws of the bottom for one top; what they share is global.
* **The top alone**: the decoder fed the top and zeros for the bottom (training asks it to
  reconstruct the image from the top alone too, so the top has to carry the global form).

The bits under the picture are the code lengths $-\log_2 p_\lambda$ of each level, beside the
uniform prior's $4\log_2 K_{\text{top}}$ and $49\log_2 K$.
"""

LATENT = r"""
**Aggregated posterior vs prior.** Each dot is the posterior mean $\mu_\phi(x)$ of a test image,
coloured by its class: together they trace $q_{\text{agg}}(z)$. Black rings are samples from the
prior. For 2-D models the shading and contours (50%, 90%, 99% of the mass) are the prior's exact
density: $\mathcal N(0, I)$, or the flow's
$\log p_\lambda(z) = \log \mathcal N\big(f_\lambda(z); 0, I\big) + \log\big|\det \partial f_\lambda/\partial z\big|$.
**Click the map** to decode that point. For 16-D models the map is a PCA (computed live) or a
UMAP (shipped; UMAP has no inverse, so a click decodes the nearest test point).

**ELBO surgery.** Averaged over the data, the KL term splits into two parts:

$$\frac1n\sum_{i=1}^n \mathrm{KL}\big(q_\phi(z|x_i)\,\|\,p(z)\big) = \mathbb I_q[x, z] + \mathrm{KL}\big(q_{\text{agg}}(z)\,\|\,p(z)\big).$$

The mutual information $\mathbb I_q[x,z]$ is what the code says about the image (at most
$\log n$); the marginal KL is pure waste, paid only because the prior differs from
$q_{\text{agg}}$. A learned prior such as the flow shrinks it.

**Posterior collapse.** A dimension whose posterior equals the prior for every image has zero
KL and carries no information. *Active units* count dimensions whose posterior mean varies
across images, $\operatorname{Cov}_x \mathbb E_{q}[z_d] > 0.01$; the bar chart shows the KL per
dimension.

**VQ-VAE.** Usage histogram of the $K$ codes over the test set, dead codes, and the
perplexity $\exp H$ of code usage (the effective number of codes). The scatter is a PCA of the
codebook vectors $e_k$ with encoder outputs $z_e$ around them, coloured by the code they
snap to: quantization cuts the space into Voronoi cells around the codes.
"""

TRAIN = r"""Training maximises the average ELBO (VAEs) or minimises reconstruction + codebook +
commitment loss (VQ-VAE, then its code prior is fitted by maximum likelihood on the codes
of the training images)."""
