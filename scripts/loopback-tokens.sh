# Sourced by the scripts that run the loop on loopback (demo.sh,
# compare.sh, pipeline.sh): write_tokens DIR writes fresh secrets for an
# admin, the fleet's executors, the cloud executor and the application into
# DIR/{admin,executor,cloud,app}.token, and the controller's tokens file
# (DIR/tokens) naming the first two.
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
write_tokens() {
  local dir=$1 admin fleet
  admin=$(secret); fleet=$(secret)
  printf 'ops admin %s\nfleet executor %s\n' "$admin" "$fleet" >"$dir/tokens"
  echo "$admin" >"$dir/admin.token"; echo "$fleet" >"$dir/executor.token"; secret >"$dir/cloud.token"; secret >"$dir/app.token"
  chmod 600 "$dir"/*.token "$dir/tokens"
}
