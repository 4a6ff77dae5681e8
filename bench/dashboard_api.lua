-- wrk script for bench/dashboard_load.sh: each request takes the next path of the dashboard's
-- read API in turn, so every route is under load, not only the cheapest one. Paths given after
-- `--` on wrk's command line replace the default list.
local paths = { "/api/status", "/api/account", "/api/performance", "/api/bars", "/api/fills", "/api/config", "/metrics" }
local i = 0

init = function(args)
  if #args > 0 then
    paths = args
  end
end

request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
