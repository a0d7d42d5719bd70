"""Authentication primitives the provider modules share: constant-time HMAC checks and signed
timestamps (:mod:`.signatures`), HTTP Basic credentials (:mod:`.basic`), HMAC JSON Web Tokens
(:mod:`.jwt`) and Amazon SNS message signatures (:mod:`.sns_signature`) and their certificates
(:mod:`.sns_certificates`). Each verifier has a
matching signer, so tests and ``dlrhub send-sample`` can make genuine requests."""
