pub fn run(_: &crate::pc::Context, _: DemoArgs) -> anyhow::Result<()> {
    Ok(())
}
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}
