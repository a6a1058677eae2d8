//! `autoencoder models`: every layer of both models, as Keras's summary shows them.

use anyhow::Result;
use autoencoder::models::{self, ModelKind};

pub fn run() -> Result<()> {
    for kind in ModelKind::ALL {
        let m = models::build(kind, 0)?;
        outln!("model `{kind}` (input {:?})", models::INPUT_SHAPE);
        outln!("  {:<20} {:<16} {:<16} {:>10} {:>12}", "layer", "type", "output shape", "params", "MFLOP/img");
        for l in m.layers() {
            let params: usize = l.params().iter().map(|p| p.value.len()).sum();
            outln!(
                "  {:<20} {:<16} {:<16} {:>10} {:>12.2}",
                l.name(),
                l.kind(),
                format!("{:?}", l.output_shape()),
                params,
                2.0 * l.macs() as f64 / 1e6
            );
        }
        outln!("  total params: {}", m.param_count());
        outln!("  forward FLOPs per image: {:.1} M (2 x multiply-adds)\n", 2.0 * m.macs() as f64 / 1e6);
    }
    Ok(())
}
