//! The vault clients against servers: AWS Secrets Manager against moto (a real emulator),
//! Azure Key Vault against a loopback mock of its token and secret calls (no emulator exists).

mod aws;
mod keyvault;
