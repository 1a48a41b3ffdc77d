from jaxsim.cli import entry

entry()
